using System.Collections.Concurrent;
using System.ComponentModel;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace IotGateway.Testing;

/// <summary>
/// A process a test or a benchmark started: its output is drained (a full pipe would stall it) into a short tail kept
/// for error messages, and it is killed when disposed, and also when the process that started it exits.
/// </summary>
public sealed partial class ChildProcess : IAsyncDisposable
{
    private const int TailLines = 60;
    private const int SigTerm = 15;

    // Every live child, so that an exit no finally block sees (an unhandled crash, a run cut short) still kills them.
    private static readonly ConcurrentDictionary<ChildProcess, byte> Live = new();

    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly Action<string>? _onLine;

    static ChildProcess() => AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();

    private ChildProcess(Process process, string name, Stopwatch sinceStart, Action<string>? onLine)
    {
        _process = process;
        Name = name;
        SinceStart = sinceStart;
        _onLine = onLine;
    }

    public string Name { get; }

    public int Id => _process.Id;

    /// <summary>Started just before the process was, so it times the process's whole life.</summary>
    public Stopwatch SinceStart { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>
    /// Starts <paramref name="fileName"/>. <paramref name="environment"/> adds to (or, with a null value, removes from)
    /// the inherited environment; <paramref name="onLine"/> sees every line of stdout and stderr. Without
    /// <paramref name="killAtExit"/> the process outlives this one unless disposed.
    /// </summary>
    public static ChildProcess Start(string name, string fileName, IEnumerable<string> arguments, string workingDirectory,
        IReadOnlyDictionary<string, string?>? environment = null, bool captureOutput = true, Action<string>? onLine = null,
        bool killAtExit = true)
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

        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                startInfo.Environment.Remove(key);
            }
            else
            {
                startInfo.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var sinceStart = new Stopwatch();
        var child = new ChildProcess(process, name, sinceStart, onLine);
        process.OutputDataReceived += (_, e) => child.Remember(e.Data);
        process.ErrorDataReceived += (_, e) => child.Remember(e.Data);

        sinceStart.Start();
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            process.Dispose();
            throw new InvalidOperationException($"Could not start {name} ({fileName}): {e.Message}", e);
        }

        if (killAtExit)
        {
            Live.TryAdd(child, 0);
        }

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

    /// <summary>True when the process exited within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(timer.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>SIGTERM, as docker stop and systemd send it; returns at once.</summary>
    public void Terminate()
    {
        if (!_process.HasExited)
        {
            _ = SendSignal(_process.Id, SigTerm);
        }
    }

    /// <summary>SIGTERM (a graceful stop), then SIGKILL if it has not exited within <paramref name="grace"/>. True when it stopped by itself.</summary>
    public async Task<bool> StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return true;
        }

        Terminate();
        if (await WaitForExitAsync(grace).ConfigureAwait(false))
        {
            return true;
        }

        Kill();
        return false;
    }

    /// <summary>SIGKILL to the process and its children, and a wait of up to 5 s for it to be gone.</summary>
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
        catch (Win32Exception)
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

        _onLine?.Invoke(line);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
