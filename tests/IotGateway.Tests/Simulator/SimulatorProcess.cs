using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using DeviceSimulator.Devices;

namespace IotGateway.Tests.Simulator;

// The simulator's real program as a separate process, for what only a process has: signals, an exit code, being killed.
internal sealed class SimulatorProcess : IAsyncDisposable
{
    public const int SigInt = 2;
    public const int SigTerm = 15;

    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private SimulatorProcess(Process process)
    {
        _process = process;
    }

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static SimulatorProcess Start(params string[] arguments) => Start(new Dictionary<string, string>(), arguments);

    public static SimulatorProcess Start(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(typeof(SimulatedDevice).Assembly.Location);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var simulator = new SimulatorProcess(Process.Start(start)!);
        simulator._process.OutputDataReceived += (_, e) => simulator.Append(e.Data);
        simulator._process.ErrorDataReceived += (_, e) => simulator.Append(e.Data);
        simulator._process.BeginOutputReadLine();
        simulator._process.BeginErrorReadLine();
        return simulator;
    }

    // kill(2), as a terminal (SIGINT) or docker stop and systemd (SIGTERM) send it.
    public void Signal(int signal) =>
        Assert.True(SendSignal(_process.Id, signal) == 0, $"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");

    // SIGKILL: the device vanishes without a word, as one that loses power.
    public void Kill() => _process.Kill();

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"the simulator did not exit within {timeout.TotalSeconds} s; its output:\n{Output}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
