using IotGateway.Data;
using IotGateway.Events;
using IotGateway.Observability;
using Microsoft.Extensions.Options;

namespace IotGateway.Commands;

// Marks commands whose TTL ran out unanswered as Expired.
public sealed partial class CommandExpiry(
    ICommandStore store,
    DatabaseStartup database,
    CommandCompletion completion,
    EventHub events,
    IOptions<CommandOptions> options,
    GatewayMetrics metrics,
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
            metrics.CommandTransition(CommandStatus.Expired, expired.Count);
            LogExpired(expired.Count);
            completion.Finished([.. expired.Select(c => c.Id)]);
            foreach (var (id, deviceId) in expired)
            {
                if (events.Wants(deviceId))
                {
                    events.Publish(ServerEvent.Command(deviceId, id, CommandStatus.Expired, now));
                }
            }
        }

        return expired.Count;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} commands expired unanswered")]
    private partial void LogExpired(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Expiry sweep failed: {Reason}")]
    private partial void LogSweepFailed(string reason);
}
