namespace IotGateway.Bench.Benchmarks;

/// <summary>
/// Time from process start to /health/ready, on an empty database and on one holding N readings: start-up must
/// not grow with the data (no scans, no loading of readings).
/// </summary>
public sealed class StartupBenchmark(RepositoryLayout layout)
{
    public const int DefaultReadings = 1_000_000;
    private const int Starts = 3;
    private const int SeedDevices = 1000;
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    public async Task<BenchResult> RunAsync(int readings, CancellationToken cancellationToken)
    {
        await using var broker = await BenchBroker.StartAsync(cancellationToken);
        var notes = new List<string>();

        // (a) Empty database: every start is a first start, with its own folder and session.
        var empty = new List<TimeSpan>();
        for (var run = 1; run <= Starts; run++)
        {
            using var data = new TempDirectory("iotgw-bench-startup-empty-");
            empty.Add(await TimeStartAsync(broker, $"bench-startup-empty-{run}", data.Path, notes, cancellationToken));
        }

        // (b) The same, on a database that holds N readings.
        using var seeded = new TempDirectory("iotgw-bench-startup-seeded-");
        const string ServerId = "bench-startup";
        await TimeStartAsync(broker, ServerId, seeded.Path, notes, cancellationToken); // creates and migrates the database
        var databasePath = Path.Combine(seeded.Path, "gateway.db");
        var seeding = Stopwatch.StartNew();
        Seed(databasePath, readings, cancellationToken);
        seeding.Stop();
        var databaseMb = new FileInfo(databasePath).Length / (1024.0 * 1024.0);

        var withData = new List<TimeSpan>();
        for (var run = 1; run <= Starts; run++)
        {
            withData.Add(await TimeStartAsync(broker, ServerId, seeded.Path, notes, cancellationToken,
                whileRunning: run == Starts && readings > 0 ? CheckSeededDataIsServedAsync : null));
        }

        var emptyMedian = Median(empty);
        var dataMedian = Median(withData);
        var rows = new List<ResultRow>
        {
            new("start → ready, empty database (median of 3)", Report.Seconds(emptyMedian), $"{Report.Target("< 2 s", emptyMedian < TimeSpan.FromSeconds(2))} (runs: {string.Join(", ", empty.Select(Report.Seconds))})"),
            new($"start → ready, {Report.Count(readings)} readings (median of 3)", Report.Seconds(dataMedian), $"{Report.Target("< 2 s", dataMedian < TimeSpan.FromSeconds(2))} (runs: {string.Join(", ", withData.Select(Report.Seconds))})"),
        };
        notes.Insert(0, $"Readings inserted straight into SQLite ({Report.Count(readings)} rows over {SeedDevices} devices, one transaction, {seeding.Elapsed.TotalSeconds:0.0} s); database file {databaseMb:0} MB. Each start is stopped with SIGTERM before the next.");
        return new BenchResult("startup", $"startup: process start → /health/ready", rows, notes);
    }

    private async Task<TimeSpan> TimeStartAsync(MosquittoBroker broker, string serverId, string dataDirectory, List<string> notes,
        CancellationToken cancellationToken, Func<GatewayApi, int, CancellationToken, Task>? whileRunning = null)
    {
        await using var gateway = BenchGateway.Start(layout, broker, serverId, dataDirectory);
        var ready = await gateway.WaitUntilReadyAsync(ReadyTimeout, cancellationToken);
        if (whileRunning is not null)
        {
            using var api = gateway.Api();
            await whileRunning(api, SeedDevices, cancellationToken);
        }

        var stopping = Stopwatch.StartNew();
        if (!await gateway.StopAsync())
        {
            notes.Add($"GATEWAY DID NOT STOP within 15 s of SIGTERM (it was killed). Its output:\n{gateway.OutputTail()}");
        }
        else if (stopping.Elapsed > TimeSpan.FromSeconds(5))
        {
            notes.Add($"The gateway took {stopping.Elapsed.TotalSeconds:0.0} s to stop after SIGTERM.");
        }

        return ready;
    }

    /// <summary>The gateway serves the seeded rows as its own: a device and its newest reading read back through the API.</summary>
    private static async Task CheckSeededDataIsServedAsync(GatewayApi api, int seededDevices, CancellationToken cancellationToken)
    {
        var telemetry = await api.GetJsonAsync($"/api/devices/{DeviceId(0)}/telemetry?limit=1", cancellationToken);
        if (telemetry.GetProperty("items").GetArrayLength() != 1)
        {
            throw new BenchFailure($"The gateway does not serve the seeded readings: GET /api/devices/{DeviceId(0)}/telemetry?limit=1 returned {telemetry}.");
        }
    }

    private static string DeviceId(int d) => $"dev-{d:D4}";

    /// <summary>N readings, one a second per device over SeedDevices devices in turn, ending now.</summary>
    private static void Seed(string databasePath, int readings, CancellationToken cancellationToken)
    {
        var first = DateTimeOffset.UtcNow - TimeSpan.FromSeconds((double)readings / SeedDevices);
        IEnumerable<(string, SeededReadings.Reading)> RoundRobin()
        {
            for (var i = 0; i < readings; i++)
            {
                var id = DeviceId(i % SeedDevices);
                var payload = $$"""{"deviceId":"{{id}}","messageType":"DATA","temp":21.5,"lat":48.01,"lng":-88.62,"messageId":"m-{{i}}"}""";
                yield return (id, new SeededReadings.Reading(first.AddTicks((long)i * TimeSpan.TicksPerSecond / SeedDevices), payload, MessageKey: $"m-{i}"));
            }
        }

        SeededReadings.Insert(GatewayStorage.Sqlite(databasePath), RoundRobin(), cancellationToken);
        // Fold the write-ahead log into the file now, so the timed starts do not pay for our insert.
        GatewayDatabase.Checkpoint(databasePath);
    }

    private static TimeSpan Median(List<TimeSpan> values) => values.Order().ElementAt(values.Count / 2);
}
