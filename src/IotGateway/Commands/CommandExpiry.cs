
namespace IotGateway.Commands;

// Marks commands whose TTL ran out unanswered as Expired.
public sealed partial class CommandExpiry(
    ICommandStore store,
    DatabaseStartup database,
    CommandTransitions transitions,
    IOptions<CommandOptions> options,
    TimeProvider time,
    ILogger<CommandExpiry> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await database.Ready.WaitAsync(stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.ExpirySweepSeconds), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await SweepAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogSweepFailed(ex.GetBaseException().Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // Idempotent: with several instances each sweeps, and a command expires once.
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var expired = await store.ExpireDueAsync(now, cancellationToken);
        if (expired.Count > 0)
        {
            LogExpired(expired.Count);
            transitions.Announce(CommandStatus.Expired, expired, now);
        }

        return expired.Count;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} commands expired unanswered")]
    private partial void LogExpired(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Expiry sweep failed: {Reason}")]
    private partial void LogSweepFailed(string reason);
}
