using IotGateway.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IotGateway.Commands;

// Marks commands whose TTL ran out unanswered as Expired.
public sealed partial class CommandExpiry(IServiceScopeFactory scopes, DatabaseWriteGate writeGate, IOptions<CommandOptions> options, GatewayMetrics metrics,
    TimeProvider time, ILogger<CommandExpiry> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
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
        var due = db.Commands.Where(c => (c.Status == CommandStatus.Pending || c.Status == CommandStatus.Published) && c.ExpiresAt <= now);

        // Usually nothing is due: a read does not queue behind (or hold up) the writers.
        if (!await due.AnyAsync(cancellationToken))
        {
            return 0;
        }

        int expired;
        using (await writeGate.EnterAsync(cancellationToken))
        {
            expired = await due.ExecuteUpdateAsync(s => s.SetProperty(c => c.Status, CommandStatus.Expired).SetProperty(c => c.ExpiredAt, now), cancellationToken);
        }

        if (expired > 0)
        {
            metrics.CommandTransition(CommandStatus.Expired, expired);
            LogExpired(expired);
        }

        return expired;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} commands expired unanswered")]
    private partial void LogExpired(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Expiry sweep failed: {Reason}")]
    private partial void LogSweepFailed(string reason);
}
