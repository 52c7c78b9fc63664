using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using IotGateway.Tests.Infrastructure;

namespace IotGateway.Tests.Gateway;

// The gateway as users run it: its own process, from its build output, in a working directory of its own.
// Needed where the test host cannot stand in: first run with no configuration, SIGKILL, SIGTERM.
public sealed partial class GatewayProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private GatewayProcess(Process process) => _process = process;

    public IReadOnlyCollection<string> Output => _output;

    public Uri BaseAddress => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : throw new InvalidOperationException("not listening yet");

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    public static string GatewayDll
    {
        get
        {
            // tests/IotGateway.Tests/bin/<Configuration>/net10.0 -> src/IotGateway/bin/<Configuration>/net10.0
            var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var configuration = testBin.Parent!.Name;
            var repository = testBin.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
            var dll = Path.Combine(repository, "src", "IotGateway", "bin", configuration, testBin.Name, "IotGateway.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("Build the gateway first (dotnet build).", dll);
        }
    }

    public static GatewayProcess Start(string workingDirectory, IReadOnlyDictionary<string, string>? environment = null, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(GatewayDll);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // A clean environment for the gateway's own settings: nothing from the test run leaks in.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || k.StartsWith("DOTNET_ENVIRONMENT", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(key);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var gateway = new GatewayProcess(process);
        process.OutputDataReceived += (_, e) => gateway.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => gateway.OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return gateway;
    }

    public async Task<Uri> WaitUntilListeningAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var exited = _process.WaitForExitAsync(cts.Token);
        var first = await Task.WhenAny(_listening.Task, exited);
        if (first != _listening.Task)
        {
            throw new InvalidOperationException($"The gateway did not start listening:{Environment.NewLine}{string.Join(Environment.NewLine, _output)}");
        }

        return await _listening.Task;
    }

    public async Task WaitUntilReadyAsync(TimeSpan timeout)
    {
        var address = await WaitUntilListeningAsync(timeout);
        using var http = new HttpClient { BaseAddress = address };
        await Eventually.UntilAsync(async () =>
        {
            try
            {
                return (await http.GetAsync("/health/ready")).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, timeout, $"the gateway process reports ready; output so far:{Environment.NewLine}{string.Join(Environment.NewLine, _output.TakeLast(30))}");
    }

    public void Kill() => _process.Kill(entireProcessTree: true);

    // SIGTERM, as docker stop and systemd send it.
    public void Terminate()
    {
        if (!_process.HasExited)
        {
            Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).WaitForExit();
        }
    }

    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue(line);
        // Plain console or JSON console: the address ends at whitespace, a quote or a backslash.
        if (ListeningLine().Match(line) is { Success: true } match
            && Uri.TryCreate(match.Groups[1].Value.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal).Replace("[::]", "127.0.0.1", StringComparison.Ordinal),
                UriKind.Absolute, out var address))
        {
            _listening.TrySetResult(address);
        }
    }

    [GeneratedRegex("""Now listening on: (http://[^\s"\\]+)""")]
    private static partial Regex ListeningLine();
}
