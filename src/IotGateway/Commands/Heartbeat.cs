
namespace IotGateway.Commands;

// The article's server sends PING to every signed-in device every 10 s. We do the same when enabled, but
// skip devices that have any unanswered command yet, so an offline device does not pile them up.
public sealed partial class Heartbeat(IServiceScopeFactory scopes, DatabaseStartup database, IOptions<CommandOptions> options, TimeProvider time,
    ILogger<Heartbeat> logger) : BackgroundService
{
    public const string RequestedBy = "heartbeat";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var heartbeat = options.Value.Heartbeat;
        if (!heartbeat.Enabled)
        {
            return;
        }

        LogEnabled(heartbeat.Command, heartbeat.IntervalSeconds);
        await database.Ready.WaitAsync(stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(heartbeat.IntervalSeconds), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await BeatAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogFailed(ex.GetBaseException().Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async Task<int> BeatAsync(CancellationToken cancellationToken)
    {
        var heartbeat = options.Value.Heartbeat;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var devices = await db.Devices.AsNoTracking()
            .Where(d => d.SignedIn && d.PendingCommands == 0)
            .Select(d => d.Id)
            .ToListAsync(cancellationToken);
        if (logger.IsEnabled(LogLevel.Debug))
        {
            LogBeat(devices.Count, await db.Devices.CountAsync(d => d.SignedIn && d.PendingCommands > 0, cancellationToken));
        }

        if (devices.Count == 0)
        {
            return 0;
        }

        var intake = scope.ServiceProvider.GetRequiredService<CommandIntake>();
        await intake.QueueManyAsync(devices, new CommandRequestSpec(heartbeat.Command, null, heartbeat.TtlSeconds, RequestedBy), batchId: null, cancellationToken);
        return devices.Count;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Heartbeat on: {Command} every {IntervalSeconds} s to each signed-in device")]
    private partial void LogEnabled(string command, double intervalSeconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Heartbeat: {Queued} commands queued, {Skipped} signed-in devices skipped (unanswered commands)")]
    private partial void LogBeat(int queued, int skipped);

    [LoggerMessage(Level = LogLevel.Error, Message = "Heartbeat round failed: {Reason}")]
    private partial void LogFailed(string reason);
}
