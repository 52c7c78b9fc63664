using System.Collections.Concurrent;
using System.Net;
using System.Text.RegularExpressions;

namespace IotGateway.Testing;

/// <summary>
/// The gateway as users run it: `dotnet IotGateway.dll` from its build output, in a working directory of its own,
/// configured by environment variables and arguments. For what an in-process host cannot stand in for (first run
/// with no configuration, SIGKILL, SIGTERM) and for measuring the gateway as it is deployed.
/// </summary>
public sealed partial class GatewayProcess : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _output = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ChildProcess _process = null!;

    private GatewayProcess()
    {
    }

    /// <summary>Every line the gateway printed so far, stdout and stderr interleaved.</summary>
    public IReadOnlyCollection<string> Output => _output;

    /// <summary>The address from its "Now listening on" line (0.0.0.0 and [::] read as 127.0.0.1).</summary>
    public Uri BaseAddress => _listening.Task.IsCompletedSuccessfully ? _listening.Task.Result : throw new InvalidOperationException("not listening yet");

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    public int ExitCode => _process.ExitCode;

    /// <summary>Time since the process was started.</summary>
    public TimeSpan Uptime => _process.SinceStart.Elapsed;

    /// <summary>The gateway's build output next to <paramref name="repositoryRoot"/>: src/IotGateway/bin/{configuration}/net10.0.</summary>
    public static string BuildOutputDll(string repositoryRoot, string configuration) =>
        Path.Combine(repositoryRoot, "src", "IotGateway", "bin", configuration, "net10.0", "IotGateway.dll");

    /// <summary>
    /// Starts <paramref name="gatewayDll"/>. The gateway's own settings come only from <paramref name="environment"/>
    /// and <paramref name="arguments"/>: ASPNETCORE_* and DOTNET_ENVIRONMENT of the calling process are not passed on.
    /// </summary>
    public static GatewayProcess Start(string gatewayDll, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null,
        params string[] arguments)
    {
        var variables = new Dictionary<string, string?>();
        foreach (var key in Environment.GetEnvironmentVariables().Keys.Cast<string>()
                     .Where(k => k.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || k.StartsWith("DOTNET_ENVIRONMENT", StringComparison.Ordinal)))
        {
            variables[key] = null;
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            variables[key] = value;
        }

        var gateway = new GatewayProcess();
        gateway._process = ChildProcess.Start("gateway", "dotnet", [gatewayDll, .. arguments], workingDirectory, variables, onLine: gateway.OnLine);
        return gateway;
    }

    /// <summary>
    /// Starts <paramref name="gatewayDll"/> listening on <paramref name="address"/> (ASPNETCORE_URLS): known from the
    /// start, so readiness is asked from the first moment and needs no "Now listening" line (which a log level of
    /// Warning hides).
    /// </summary>
    public static GatewayProcess StartOn(Uri address, string gatewayDll, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var variables = new Dictionary<string, string>(environment ?? new Dictionary<string, string>())
        {
            ["ASPNETCORE_URLS"] = address.GetLeftPart(UriPartial.Authority),
        };
        var gateway = Start(gatewayDll, workingDirectory, variables);
        gateway._listening.TrySetResult(address);
        return gateway;
    }

    public async Task<Uri> WaitUntilListeningAsync(TimeSpan timeout)
    {
        var exited = _process.WaitForExitAsync(timeout);
        var first = await Task.WhenAny(_listening.Task, exited).ConfigureAwait(false);
        if (first != _listening.Task)
        {
            throw new InvalidOperationException($"The gateway did not start listening:{Environment.NewLine}{string.Join(Environment.NewLine, _output)}");
        }

        return await _listening.Task.ConfigureAwait(false);
    }

    /// <summary>
    /// Asks GET /health/ready every 20 ms, from the moment the gateway listens, until it answers 200; returns the time
    /// from process start. Fails early, with the gateway's last output, if the process exits.
    /// </summary>
    public async Task<TimeSpan> WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var address = await WaitUntilListeningAsync(timeout).ConfigureAwait(false);
        // A short timeout per request: a probe that hangs must not hold up the loop.
        using var probe = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(2) };
        var lastAnswer = "no answer yet";
        while (true)
        {
            ThrowIfExited("while starting");
            try
            {
                using var response = await probe.GetAsync("/health/ready", cancellationToken).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return Uptime;
                }

                lastAnswer = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}";
            }
            catch (HttpRequestException e)
            {
                lastAnswer = e.Message;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                lastAnswer = "the probe timed out";
            }

            if (waited.Elapsed >= timeout)
            {
                throw new TimeoutException(
                    $"The gateway was not ready within {timeout.TotalSeconds:0.#} s (last /health/ready: {lastAnswer}). Its output:\n{OutputTail()}");
            }

            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    public void ThrowIfExited(string when)
    {
        if (_process.HasExited)
        {
            throw new InvalidOperationException($"The gateway exited (code {_process.ExitCode}) {when}. Its output:\n{OutputTail()}");
        }
    }

    /// <summary>The last lines it printed, for error messages.</summary>
    public string OutputTail() => _process.OutputTail();

    public void Kill() => _process.Kill();

    /// <summary>SIGTERM, as docker stop and systemd send it; returns at once.</summary>
    public void Terminate() => _process.Terminate();

    /// <summary>SIGTERM and wait, as an orchestrator stops it; killed after <paramref name="grace"/>. True when it stopped by itself.</summary>
    public Task<bool> StopAsync(TimeSpan grace) => _process.StopAsync(grace);

    /// <summary>Waits for the exit; throws <see cref="TimeoutException"/> if it takes longer than <paramref name="timeout"/>.</summary>
    public async Task WaitForExitAsync(TimeSpan timeout)
    {
        if (!await _process.WaitForExitAsync(timeout).ConfigureAwait(false))
        {
            throw new TimeoutException($"The gateway did not exit within {timeout.TotalSeconds:0.#} s. Its output:\n{OutputTail()}");
        }
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();

    private void OnLine(string line)
    {
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
