namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// The gateway from its build output as a separate process (<see cref="GatewayProcess"/>), configured as it is
/// deployed, only through environment variables: an external broker, its own HTTP port and SQLite file (or a
/// PostgreSQL database), quiet logs, an operator key of this run's.
/// </summary>
public sealed class BenchGateway : IAsyncDisposable
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(15);

    private readonly GatewayProcess _process;

    private BenchGateway(GatewayProcess process, string databasePath, string apiKey)
    {
        _process = process;
        DatabasePath = databasePath;
        ApiKey = apiKey;
    }

    public Uri BaseAddress => _process.BaseAddress;

    public string DatabasePath { get; }

    /// <summary>The operator key the REST API expects in X-API-Key (generated per run).</summary>
    public string ApiKey { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The process's CPU time (user + system, all threads) when /health/ready first answered 200.</summary>
    public TimeSpan? CpuAtReady { get; private set; }

    /// <summary>Time since the process was started (the stopwatch starts just before the process does).</summary>
    public TimeSpan Uptime => _process.Uptime;

    /// <summary>
    /// Starts the gateway; <paramref name="dataDirectory"/> is its working directory and holds its SQLite file, unless
    /// <paramref name="postgres"/> (an Npgsql connection string) puts its data in PostgreSQL. DatabasePath is then that
    /// connection string (GatewayDatabase reads either). <paramref name="settings"/> are more environment variables
    /// (Telemetry__RetentionDays=…).
    /// </summary>
    public static BenchGateway Start(RepositoryLayout layout, MosquittoBroker broker, string serverId, string dataDirectory, string? postgres = null,
        IReadOnlyDictionary<string, string>? settings = null)
    {
        var address = new Uri($"http://127.0.0.1:{FreePort.OnLoopback()}");
        var databasePath = postgres ?? Path.Combine(dataDirectory, "gateway.db");
        var apiKey = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var environment = new Dictionary<string, string>
        {
            ["BROKER"] = broker.Url,
            ["SERVER_ID"] = serverId,
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

        return new BenchGateway(GatewayProcess.StartOn(address, layout.GatewayDll, dataDirectory, environment), databasePath, apiKey);
    }

    /// <summary>
    /// Polls GET /health/ready every 20 ms until it answers 200; returns the time from process start and records the
    /// CPU time it took. Fails early, with the gateway's last output, if the process exits.
    /// </summary>
    public async Task<TimeSpan> WaitUntilReadyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            var uptime = await _process.WaitUntilReadyAsync(timeout, cancellationToken);
            CpuAtReady = ProcFs.ReadCpuTime(ProcessId);
            return uptime;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            throw new BenchFailure(e.Message, e);
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

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync(timeout);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
