using IotGateway.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IotGateway.Tests.Gateway;

// Telemetry:RetentionDays: old readings go, in small transactions beside ingest; new ones and the counters stay true.
public sealed class SqliteRetentionTests : RetentionTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresRetentionTests : RetentionTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class RetentionTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task RetentionDeletesOnlyOldReadingsWhileIngestGoesOn()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s =>
        {
            s["Telemetry:RetentionDays"] = "30";
            s["Telemetry:RetentionBatchSize"] = "100";
            s["Telemetry:RetentionIntervalMinutes"] = "10080";
        }, provider: Provider);
        await WaitForRunsAsync(gateway, 1); // the run at start, on an empty table
        var now = DateTimeOffset.UtcNow;
        SeededReadings.Insert(gateway.Storage, "gone", Seed(3000, now.AddDays(-40), """{"temp":1}"""));
        SeededReadings.Insert(gateway.Storage, "mixed", Seed(2000, now.AddDays(-35), """{"temp":2}"""));
        SeededReadings.Insert(gateway.Storage, "mixed", Seed(500, now.AddDays(-10), """{"temp":3}"""));

        // Devices publish for as long as retention runs, and a little after.
        await using var mixed = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "mixed");
        await using var fresh = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "fresh");
        using var retentionDone = new CancellationTokenSource();
        var publishing = Task.Run(async () =>
        {
            var sent = 0;
            var after = 0;
            while (after < 100)
            {
                var device = sent % 2 == 0 ? mixed : fresh;
                await device.PublishAsync(TopicRoots.Default.For(device.ClientId).Data, $$"""{"temp":{{sent}}}""", MqttQualityOfServiceLevel.AtLeastOnce);
                sent++;
                after += retentionDone.IsCancellationRequested ? 1 : 0;
            }

            return sent;
        });
        await gateway.WaitForDeviceAsync("fresh", d => d.TelemetryCount >= 50, "ingest is under way");

        var run = await gateway.Services.GetRequiredService<TelemetryRetention>().RunAsync(CancellationToken.None);
        await retentionDone.CancelAsync();
        var sent = await publishing;

        Assert.Equal(5000, run.Deleted);
        Assert.Equal(50, run.Transactions);
        var expectedMixed = 500 + (sent + 1) / 2;
        await gateway.WaitForDeviceAsync("mixed", d => d.TelemetryCount == expectedMixed, "every new reading of mixed is stored and counted");
        await gateway.WaitForDeviceAsync("fresh", d => d.TelemetryCount == sent / 2, "every reading of fresh is stored and counted");
        Assert.Equal((0L, 0L), SeededReadings.Count(gateway.Storage, "gone"));
        Assert.Equal((expectedMixed, (long)expectedMixed), SeededReadings.Count(gateway.Storage, "mixed"));
        Assert.Equal((sent / 2L, sent / 2L), SeededReadings.Count(gateway.Storage, "fresh"));
        Assert.Equal(0, gateway.Storage.Scalar($"""SELECT COUNT(*) FROM "Telemetry" WHERE "ReceivedAt" < {now.AddDays(-30).UtcTicks}"""));
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("Retention: 5000 readings received before", StringComparison.Ordinal) && l.Contains("in 50 transactions", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task RetentionRunsOnItsScheduleOldestFirstAndKeepsTheNewestReading()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", s =>
        {
            s["Telemetry:RetentionDays"] = "30";
            s["Telemetry:RetentionIntervalMinutes"] = "1440";
            s.SlowPeriodicTimers();
        }, services => services.AddSingleton<TimeProvider>(time), waitUntilReady: false, provider: Provider);
        await WaitForRunsAsync(gateway, 1); // the run at start, on an empty table
        var now = time.GetUtcNow();
        SeededReadings.Insert(gateway.Storage, "a", Seed(10, now.AddDays(-31), """{"v":1}"""));
        SeededReadings.Insert(gateway.Storage, "b", Seed(5, now.AddDays(-1), """{"v":2}"""));
        // Old readings stored after newer ones (a clock that stepped back) wait until those are old too.
        SeededReadings.Insert(gateway.Storage, "c", Seed(3, now.AddDays(-50), """{"v":3}"""));

        time.Advance(TimeSpan.FromDays(1));
        await WaitForRunsAsync(gateway, 2);
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("Retention: 10 readings received before 2026-05-03T12:00:00.0000000+00:00 (30 days) deleted in 1 transactions",
            StringComparison.Ordinal));
        Assert.Equal((0L, 0L), SeededReadings.Count(gateway.Storage, "a"));
        Assert.Equal((5L, 5L), SeededReadings.Count(gateway.Storage, "b"));
        Assert.Equal((3L, 3L), SeededReadings.Count(gateway.Storage, "c"));

        // Everything is old now; the newest reading of all stays, so reading ids keep growing.
        time.Advance(TimeSpan.FromDays(40));
        await WaitForRunsAsync(gateway, 4);
        Assert.Equal((0L, 0L), SeededReadings.Count(gateway.Storage, "b"));
        Assert.Equal((1L, 1L), SeededReadings.Count(gateway.Storage, "c"));
        Assert.Equal(18, gateway.Storage.Scalar("""SELECT MAX("Id") FROM "Telemetry" """));
    }

    private static Task WaitForRunsAsync(GatewayApp gateway, int runs) =>
        Eventually.UntilAsync(() => gateway.Logs.Lines.Count(l => l.Contains("Retention: ", StringComparison.Ordinal) && l.Contains(" deleted in ", StringComparison.Ordinal)) >= runs,
            Timeout, $"retention has run {runs} times");

    // One reading a second from start, in order.
    private static IEnumerable<SeededReadings.Reading> Seed(int count, DateTimeOffset start, string payload) =>
        Enumerable.Range(0, count).Select(i => new SeededReadings.Reading(start.AddSeconds(i), payload));
}
