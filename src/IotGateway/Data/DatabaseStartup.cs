using IotGateway.Protocol;

namespace IotGateway.Data;

// Opens and migrates the database when the gateway starts, and keeps trying while it cannot (a full disk,
// a file another process holds locked): the process stays up, readiness and the API say why, and the MQTT
// client does not connect before the database is usable, so the broker keeps every message meanwhile.
public sealed partial class DatabaseStartup(IServiceProvider services, TimeProvider time, ILogger<DatabaseStartup> logger) : BackgroundService
{
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(10);

    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Completes once the schema is current and the device registry is loaded.
    public Task Ready => _ready.Task;

    public bool IsReady => _ready.Task.IsCompletedSuccessfully;

    // Why the database is not usable yet; null before the first attempt ends and once it is ready.
    public string? Problem { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await services.MigrateGatewayDatabaseAsync(stoppingToken);
                Problem = null;
                if (attempt > 1)
                {
                    LogOpened(attempt);
                }

                _ready.TrySetResult();
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                Problem = $"cannot open the database: {ex.GetBaseException().Message}";
                var delay = Backoff.Delay(TimeSpan.FromSeconds(0.25), MaxRetryDelay, attempt - 1);
                LogOpenFailed(attempt, delay.TotalSeconds, ex.GetBaseException().Message);
                try
                {
                    await Task.Delay(delay, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                // Stopping, or a start that failed elsewhere (a port in use) disposing the services under us.
                return;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot open the database (attempt {Attempt}); not connecting to the broker, retrying in {DelaySeconds:0.0} s: {Reason}")]
    private partial void LogOpenFailed(int attempt, double delaySeconds, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Database opened after {Attempts} attempts")]
    private partial void LogOpened(int attempts);
}
