using System.Globalization;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// A process the bench started: its output is drained (a full pipe would stall it) into a short tail kept for
/// error messages, and it is killed when disposed, and also when the bench itself exits or is interrupted.
/// </summary>
public sealed partial class ChildProcess : IAsyncDisposable
{
    private const int TailLines = 60;
    private const int SigTerm = 15;

    // Every live child, so that an exit the finally blocks never see (an unhandled crash) still kills them.
    private static readonly ConcurrentDictionary<ChildProcess, byte> Live = new();

    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    static ChildProcess() => AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();

    private ChildProcess(Process process, string name, Stopwatch sinceStart)
    {
        _process = process;
        Name = name;
        SinceStart = sinceStart;
    }

    public string Name { get; }

    public int Id => _process.Id;

    /// <summary>Started just before the process was, so it times the process's whole life.</summary>
    public Stopwatch SinceStart { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public static ChildProcess Start(string name, string fileName, IEnumerable<string> arguments, string workingDirectory,
        IReadOnlyDictionary<string, string>? environment = null, bool captureOutput = true)
    {
        var startInfo = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardOutput = captureOutput,
            RedirectStandardError = captureOutput,
            RedirectStandardInput = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[key] = value;
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var sinceStart = new Stopwatch();
        var child = new ChildProcess(process, name, sinceStart);
        process.OutputDataReceived += (_, e) => child.Remember(e.Data);
        process.ErrorDataReceived += (_, e) => child.Remember(e.Data);

        sinceStart.Start();
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new BenchFailure($"Could not start {name} ({fileName}): {e.Message}", e);
        }

        Live.TryAdd(child, 0);
        if (captureOutput)
        {
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        return child;
    }

    /// <summary>The last lines the process printed (stdout and stderr interleaved), for error messages.</summary>
    public string OutputTail()
    {
        lock (_tail)
        {
            return _tail.Count == 0 ? "(no output)" : string.Join('\n', _tail);
        }
    }

    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(timer.Token);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>SIGTERM (a graceful stop), then SIGKILL if it has not exited within <paramref name="grace"/>. True when it stopped by itself.</summary>
    public async Task<bool> StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return true;
        }

        _ = SendSignal(_process.Id, SigTerm);
        if (await WaitForExitAsync(grace))
        {
            return true;
        }

        Kill();
        return false;
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill.
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        Live.TryRemove(this, out _);
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Kills every child still running: used on Ctrl+C and at process exit.</summary>
    /// <summary>
    /// The children's CPU time (user + system) from a shell's `times` output: its second line, "0m1.234s 0m0.056s".
    /// </summary>
    public static TimeSpan? ChildrenCpuTime(string output)
    {
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\d+m[\d.]+s \d+m[\d.]+s$")).ToArray();
        if (lines.Length < 2)
        {
            return null;
        }

        return lines[^1].Split(' ').Select(t =>
        {
            var m = t.IndexOf('m', StringComparison.Ordinal);
            return TimeSpan.FromMinutes(int.Parse(t[..m], CultureInfo.InvariantCulture))
                + TimeSpan.FromSeconds(double.Parse(t[(m + 1)..^1], CultureInfo.InvariantCulture));
        }).Aggregate(TimeSpan.Zero, (a, b) => a + b);
    }

    public static void KillAll()
    {
        foreach (var child in Live.Keys)
        {
            child.Kill();
        }
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > TailLines)
            {
                _tail.Dequeue();
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
