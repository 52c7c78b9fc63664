using System.Net;

namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// The gateway from its build output (`dotnet IotGateway.dll`) as a separate process, configured only through
/// environment variables, the way it is deployed: an external broker, its own HTTP port and SQLite file.
/// </summary>
public sealed class GatewayProcess : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);

    private readonly ChildProcess _process;
    private readonly HttpClient _probe;

    private GatewayProcess(ChildProcess process, Uri baseAddress, string databasePath, string apiKey)
    {
        _process = process;
        BaseAddress = baseAddress;
        DatabasePath = databasePath;
        ApiKey = apiKey;
        // Its own short-timeout client: a probe that hangs must not hold up the readiness loop.
        _probe = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(2) };
    }

    public Uri BaseAddress { get; }

    public string DatabasePath { get; }

    /// <summary>The operator key the REST API expects in X-API-Key (generated per run).</summary>
    public string ApiKey { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The process's CPU time (user + system, all threads) when /health/ready first answered 200.</summary>
    public TimeSpan? CpuAtReady { get; private set; }

    /// <summary>Time since the process was started (the stopwatch starts just before the process does).</summary>
    public TimeSpan Uptime => _process.SinceStart.Elapsed;

    /// <summary>
    /// Starts the gateway; <paramref name="dataDirectory"/> is its working directory and holds its SQLite file, unless
    /// <paramref name="postgres"/> (an Npgsql connection string) puts its data in PostgreSQL. DatabasePath is then that
    /// connection string (GatewayDatabase reads either). <paramref name="settings"/> are more environment variables
    /// (Telemetry__RetentionDays=…).
    /// </summary>
    public static GatewayProcess Start(RepositoryLayout layout, MosquittoBroker broker, string serverId, string dataDirectory, string? postgres = null,
        IReadOnlyDictionary<string, string>? settings = null)
    {
        var httpPort = FreePort.OnLoopback();
        var databasePath = postgres ?? Path.Combine(dataDirectory, "gateway.db");
        var apiKey = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var environment = new Dictionary<string, string>
        {
            ["BROKER"] = broker.Url,
            ["SERVER_ID"] = serverId,
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{httpPort}",
            ["ConnectionStrings__Gateway"] = postgres ?? $"Data Source={databasePath}",
            ["Database__Provider"] = postgres is null ? "Sqlite" : "PostgreSQL",
            ["Logging__LogLevel__Default"] = "Warning",
            // The REST API needs a key; an operator key may queue commands.
            ["Api__Keys__0__Name"] = "bench",
            ["Api__Keys__0__Key"] = apiKey,
            ["Api__Keys__0__Role"] = "Operator",
            // The per-key limit on queueing commands (200/s, burst 400 by default) would measure the setting,
            // not the gateway: lifted so the round-trip benchmark can load it.
            ["Api__RateLimit__PermitsPerSecond"] = "1000000",
            ["Api__RateLimit__Burst"] = "1000000",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            environment[key] = value;
        }

        var process = ChildProcess.Start("gateway", "dotnet", [layout.GatewayDll], dataDirectory, environment);
        return new GatewayProcess(process, new Uri($"http://127.0.0.1:{httpPort}"), databasePath, apiKey);
    }

    /// <summary>
    /// Polls GET /health/ready every 20 ms until it answers 200; returns the time from process start.
    /// Fails early, with the gateway's last output, if the process exits.
    /// </summary>
    public async Task<TimeSpan> WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        string lastAnswer = "no answer yet";
        while (true)
        {
            ThrowIfExited("while starting");
            try
            {
                using var response = await _probe.GetAsync("/health/ready", cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    var uptime = Uptime;
                    CpuAtReady = ProcFs.ReadCpuTime(ProcessId);
                    return uptime;
                }

                lastAnswer = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}";
            }
            catch (HttpRequestException e)
            {
                lastAnswer = e.Message;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                lastAnswer = "the probe timed out";
            }

            if (Uptime >= timeout)
            {
                throw new BenchFailure($"The gateway was not ready within {timeout.TotalSeconds:0.#} s (last /health/ready: {lastAnswer}). Its output:\n{OutputTail()}");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    public void ThrowIfExited(string when)
    {
        if (_process.HasExited)
        {
            throw new BenchFailure($"The gateway exited (code {_process.ExitCode}) {when}. Its output:\n{OutputTail()}");
        }
    }

    /// <summary>SIGTERM and wait, as an orchestrator stops it; killed if it takes longer than 15 s. True when it stopped by itself.</summary>
    public Task<bool> StopAsync() => _process.StopAsync(StopGrace);

    public string OutputTail() => _process.OutputTail();

    /// <summary>A client for the REST API, with this run's key.</summary>
    public GatewayApi Api() => new(this);

    public Task<bool> WaitForExitAsync(TimeSpan timeout) => _process.WaitForExitAsync(timeout);

    public async ValueTask DisposeAsync()
    {
        _probe.Dispose();
        await _process.DisposeAsync();
    }
}
