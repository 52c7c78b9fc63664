using System.Diagnostics;
using IotGateway.Observability;

namespace IotGateway.Telemetry;

// What one retention run did; Median and Longest: how long its transactions held the writer (and so ingest).
public sealed record RetentionRun(int Deleted, int Transactions, TimeSpan Elapsed, TimeSpan Median, TimeSpan Longest);

// Telemetry:RetentionDays: deletes readings older than that, oldest first, in small transactions through the write
// gate, so ingest (which shares the one writer) waits at most one small delete at a time. Readings go in arrival
// order: a run stops at the first reading that is not old yet. The newest reading of all is kept, so reading ids
// keep growing (SQLite would otherwise hand out the ids of deleted ones again). Device counters move with the rows.
// With several gateways on one PostgreSQL each runs it; a batch that finds its rows deleted by another rolls back.
public sealed partial class TelemetryRetention(
    IServiceScopeFactory scopes,
    DatabaseStartup database,
    DatabaseWriteGate writeGate,
    IOptions<TelemetryOptions> options,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<TelemetryRetention> logger) : BackgroundService
{
    private readonly TelemetryOptions _options = options.Value;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_options.RetentionDays == 0)
        {
            return;
        }

        await database.Ready.WaitAsync(stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        LogEnabled(_options.RetentionDays, _options.RetentionIntervalMinutes);
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(_options.RetentionIntervalMinutes), time);
        try
        {
            do
            {
                try
                {
                    await RunAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogRunFailed(ex.GetBaseException().Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async Task<RetentionRun> RunAsync(CancellationToken cancellationToken)
    {
        var cutoff = time.GetUtcNow().AddDays(-_options.RetentionDays);
        var elapsed = Stopwatch.StartNew();
        var deleted = 0;
        var held = new List<TimeSpan>();
        while (true)
        {
            var transaction = Stopwatch.StartNew();
            var (count, more) = await DeleteBatchAsync(cutoff, cancellationToken);
            if (count > 0)
            {
                deleted += count;
                held.Add(transaction.Elapsed);
            }

            if (!more)
            {
                break;
            }
        }

        held.Sort();
        var run = new RetentionRun(deleted, held.Count, elapsed.Elapsed, held.Count > 0 ? held[held.Count / 2] : TimeSpan.Zero,
            held.Count > 0 ? held[^1] : TimeSpan.Zero);
        metrics.RetentionRun(deleted, time.GetUtcNow());
        LogRun(deleted, cutoff, _options.RetentionDays, run.Transactions, run.Elapsed.TotalSeconds, run.Median.TotalMilliseconds, run.Longest.TotalMilliseconds);
        return run;
    }

    // Deletes the oldest readings up to the first that is not old, at most a batch of them; more: a full batch went.
    private async Task<(int Deleted, bool More)> DeleteBatchAsync(DateTimeOffset cutoff, CancellationToken cancellationToken)
    {
        var batchSize = _options.RetentionBatchSize;
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        using (await writeGate.EnterAsync(cancellationToken))
        {
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            var newest = await db.Telemetry.MaxAsync(r => (long?)r.Id, cancellationToken);
            var oldest = await db.Telemetry.AsNoTracking().Where(r => r.Id < newest).OrderBy(r => r.Id).Take(batchSize)
                .Select(r => new { r.Id, r.DeviceId, r.ReceivedAt }).ToListAsync(cancellationToken);
            var old = oldest.TakeWhile(r => r.ReceivedAt < cutoff).ToList();
            if (old.Count == 0)
            {
                return (0, false);
            }

            var last = old[^1].Id;
            if (await db.Telemetry.Where(r => r.Id <= last).ExecuteDeleteAsync(cancellationToken) != old.Count)
            {
                // Another gateway on the same PostgreSQL deleted some of them first: its counters are the true ones.
                await transaction.RollbackAsync(cancellationToken);
                return (0, false);
            }

            // One statement per distinct number of deleted readings, not per device: a batch usually holds few.
            foreach (var group in old.GroupBy(r => r.DeviceId).GroupBy(readings => readings.Count(), readings => readings.Key))
            {
                var (count, devices) = (group.Key, group.ToList());
                await db.Devices.Where(d => devices.Contains(d.Id)).ExecuteUpdateAsync(
                    s => s.SetProperty(d => d.TelemetryCount, d => d.TelemetryCount > count ? d.TelemetryCount - count : 0), cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            return (old.Count, old.Count == batchSize);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Retention on: readings older than {Days} days are deleted, a run every {IntervalMinutes} min")]
    private partial void LogEnabled(int days, double intervalMinutes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Retention: {Deleted} readings received before {Cutoff:O} ({Days} days) deleted in {Transactions} transactions, {Seconds:0.000} s; transactions took {MedianMs:0.0} ms (median), {LongestMs:0.0} ms at most")]
    private partial void LogRun(int deleted, DateTimeOffset cutoff, int days, int transactions, double seconds, double medianMs, double longestMs);

    [LoggerMessage(Level = LogLevel.Error, Message = "Retention run failed; the next run tries again: {Reason}")]
    private partial void LogRunFailed(string reason);
}
