using IotGateway.Data;
using IotGateway.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IotGateway.Commands;

// Marks commands whose TTL ran out unanswered as Expired.
public sealed partial class CommandExpiry(
    IServiceScopeFactory scopes,
    DatabaseStartup database,
    DatabaseWriteGate writeGate,
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

    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var now = time.GetUtcNow();

        // Usually nothing is due: a read does not queue behind (or hold up) the writers.
        if (!await db.Commands.AnyAsync(c => (c.Status == CommandStatus.Pending || c.Status == CommandStatus.Published) && c.ExpiresAt <= now, cancellationToken))
        {
            return 0;
        }

        var expired = new List<(Guid Id, string DeviceId)>();
        await using (var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken))
        {
            var update = write.Prepare("""
                UPDATE "Commands" SET "Status" = 'Expired', "ExpiredAt" = $now
                WHERE "Status" IN ('Pending', 'Published') AND "ExpiresAt" <= $now
                RETURNING "Id", "DeviceId"
                """, "$now");
            update.Parameters[0].Value = now.UtcTicks;
            using (var reader = update.ExecuteReader())
            {
                while (reader.Read())
                {
                    expired.Add((Guid.Parse(reader.GetString(0)), reader.GetString(1)));
                }
            }

            write.Commit();
        }

        if (expired.Count > 0)
        {
            metrics.CommandTransition(CommandStatus.Expired, expired.Count);
            LogExpired(expired.Count);
            foreach (var (id, deviceId) in expired)
            {
                completion.Finished(id);
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
