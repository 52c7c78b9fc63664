using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using IotGateway.Protocol;

namespace IotGateway.Bench.Benchmarks;

/// <summary>
/// What operators read, over N stored readings of one device (interleaved with as many from 1,000 others, as a
/// shared table holds them): aggregates and exports of all of them, the device list with each newest reading, the
/// live event stream's latency, and a retention run that deletes the older half while readings keep arriving.
/// </summary>
public sealed partial class ReadsBenchmark(RepositoryLayout layout)
{
    public const int DefaultReadings = 1_000_000;
    private const string Device = "reads-0000";
    private const int OtherDevices = 1000;
    private const int ProbeRate = 500; // readings a second, while latency is measured
    private static readonly TimeSpan Span = TimeSpan.FromDays(2);
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    public async Task<BenchResult> RunAsync(int readings, CancellationToken cancellationToken)
    {
        await using var broker = await BenchBroker.StartAsync(cancellationToken);
        using var data = new TempDirectory("iotgw-bench-reads-");
        var notes = new List<string>();
        var rows = new List<ResultRow>();

        await using (var first = BenchGateway.Start(layout, broker, "bench-reads", data.Path))
        {
            await first.WaitUntilReadyAsync(ReadyTimeout, cancellationToken); // creates and migrates the database
            await first.StopAsync();
        }

        var databasePath = Path.Combine(data.Path, "gateway.db");
        var now = DateTimeOffset.UtcNow;
        var seeding = Stopwatch.StartNew();
        Seed(databasePath, readings, now, cancellationToken);
        notes.Add($"{Report.Count(readings)} readings of {Device} interleaved with {Report.Count(readings)} from {OtherDevices:N0} other devices, "
            + $"over the last {Span.TotalDays:0} days, inserted straight into SQLite in {seeding.Elapsed.TotalSeconds:0} s; database file "
            + $"{new FileInfo(databasePath).Length / (1024.0 * 1024.0):0} MB.");

        await using (var gateway = BenchGateway.Start(layout, broker, "bench-reads", data.Path))
        {
            await gateway.WaitUntilReadyAsync(ReadyTimeout, cancellationToken);
            using var http = Client(gateway);
            rows.AddRange(await MeasureAggregatesAsync(http, readings, now, cancellationToken));
            rows.AddRange(await MeasureExportsAsync(http, gateway, readings, cancellationToken));
            rows.AddRange(await MeasureLatestAsync(http, cancellationToken));
            var (latency, _) = await ProbeAsync(broker, http, "probe-idle", until: null, cancellationToken);
            rows.Add(new ResultRow($"Event stream: reading published → its event received, {ProbeRate}/s, no retention running (p50 / p99 / max)",
                Latency(latency)));
            gateway.ThrowIfExited("while reads were measured");
            await gateway.StopAsync();
        }

        // Retention: a restart with RetentionDays=1 deletes the older half at once, while a device publishes.
        var retentionSettings = new Dictionary<string, string>
        {
            ["Telemetry__RetentionDays"] = "1",
            ["Logging__LogLevel__IotGateway.Telemetry.TelemetryRetention"] = "Information",
        };
        await using (var gateway = BenchGateway.Start(layout, broker, "bench-reads", data.Path, settings: retentionSettings))
        {
            await gateway.WaitUntilReadyAsync(ReadyTimeout, cancellationToken);
            using var http = Client(gateway);
            var finished = RetentionFinishedAsync(http, cancellationToken);
            var (latency, probed) = await ProbeAsync(broker, http, "probe-retention", finished, cancellationToken);
            await finished;
            var run = RetentionLine().Match(gateway.OutputTail());
            if (!run.Success)
            {
                throw new BenchFailure($"The retention run's log line is missing. The gateway's output:\n{gateway.OutputTail()}");
            }

            var deleted = long.Parse(run.Groups["deleted"].Value, CultureInfo.InvariantCulture);
            var seconds = double.Parse(run.Groups["seconds"].Value, CultureInfo.InvariantCulture);
            rows.Add(new ResultRow("Retention: readings older than 1 day deleted at start (transactions of 1,000)",
                $"{Report.Count(deleted)} in {seconds:0.0} s, {Report.Rate(deleted / seconds, "readings")}",
                $"{run.Groups["transactions"].Value} transactions: {run.Groups["median"].Value} ms each (median), {run.Groups["longest"].Value} ms at most"));
            rows.Add(new ResultRow($"… ingest meanwhile: reading published → its event received, {ProbeRate}/s (p50 / p99 / max)", Latency(latency),
                $"{Report.Count(probed)} readings while it ran"));
            notes.Add("Latency is from the publish (QoS 1) to the reading's event on GET /api/events: MQTT, the ingest batch and its commit, the event stream.");
            gateway.ThrowIfExited("during retention");
            await gateway.StopAsync();
        }

        return new BenchResult("reads", $"reads: aggregates, export, latest and events over {Report.Count(readings)} readings; retention", rows, notes);
    }

    private static async Task<IEnumerable<ResultRow>> MeasureAggregatesAsync(HttpClient http, int readings, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var all = $"from={Stamp(now - Span - TimeSpan.FromMinutes(1))}&to={Stamp(now + TimeSpan.FromMinutes(1))}";
        var rows = new List<ResultRow>();
        foreach (var (interval, range, what) in new[]
        {
            ("1h", all, $"all {Report.Count(readings)} readings"),
            ("1m", all, $"all {Report.Count(readings)} readings"),
            ("10s", $"from={Stamp(now - TimeSpan.FromHours(1))}&to={Stamp(now)}", "the last hour"),
        })
        {
            var times = new List<TimeSpan>();
            JsonElement answer = default;
            for (var run = 0; run < 3; run++)
            {
                var timer = Stopwatch.StartNew();
                answer = await GetJsonAsync(http, $"/api/devices/{Device}/telemetry/aggregate?field=temp&interval={interval}&{range}", cancellationToken);
                times.Add(timer.Elapsed);
            }

            var items = answer.GetProperty("items");
            var counted = items.EnumerateArray().Sum(i => i.GetProperty("count").GetInt64());
            var median = times.Order().ElementAt(1);
            rows.Add(new ResultRow($"Aggregate of temp per {interval} over {what} (median of 3)", Report.Seconds(median),
                $"{items.GetArrayLength():N0} intervals, {Report.Count(counted)} readings counted, {Report.Rate(counted / median.TotalSeconds, "readings")}"));
        }

        return rows;
    }

    private static async Task<IEnumerable<ResultRow>> MeasureExportsAsync(HttpClient http, BenchGateway gateway, int readings, CancellationToken cancellationToken)
    {
        var rows = new List<ResultRow>();
        foreach (var format in new[] { "csv", "ndjson" })
        {
            var before = ProcFs.ReadMemory(gateway.ProcessId).RssBytes;
            var peak = before;
            using var sampling = new CancellationTokenSource();
            var sampler = Task.Run(async () =>
            {
                while (!sampling.IsCancellationRequested)
                {
                    peak = Math.Max(peak, ProcFs.ReadMemory(gateway.ProcessId).RssBytes);
                    await Task.Delay(20, CancellationToken.None);
                }
            }, CancellationToken.None);

            var timer = Stopwatch.StartNew();
            long bytes = 0, lines = 0;
            using (var response = await http.GetAsync($"/api/devices/{Device}/telemetry/export?format={format}", HttpCompletionOption.ResponseHeadersRead, cancellationToken))
            {
                response.EnsureSuccessStatusCode();
                await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
                var buffer = new byte[64 * 1024];
                int read;
                while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    bytes += read;
                    lines += buffer.AsSpan(0, read).Count((byte)'\n');
                }
            }

            var elapsed = timer.Elapsed;
            await sampling.CancelAsync();
            await sampler;
            var expected = readings + (format == "csv" ? 1 : 0);
            if (lines != expected)
            {
                throw new BenchFailure($"The {format} export has {lines} lines, expected {expected}.");
            }

            rows.Add(new ResultRow($"Export of all {Report.Count(readings)} readings as {format}, streamed", Report.Seconds(elapsed),
                $"{bytes / 1e6:0} MB, {Report.Rate(readings / elapsed.TotalSeconds, "readings")}, {bytes / 1e6 / elapsed.TotalSeconds:0} MB/s; "
                + $"gateway RSS {before / 1048576.0:0} MB before, {peak / 1048576.0:0} MB at most during it"));
        }

        return rows;
    }

    private static async Task<IEnumerable<ResultRow>> MeasureLatestAsync(HttpClient http, CancellationToken cancellationToken)
    {
        var list = new List<TimeSpan>();
        for (var run = 0; run < 5; run++)
        {
            var timer = Stopwatch.StartNew();
            var page = await GetJsonAsync(http, "/api/devices?limit=1000", cancellationToken);
            list.Add(timer.Elapsed);
            var withReading = page.GetProperty("items").EnumerateArray().Count(d => d.GetProperty("latestReading").ValueKind == JsonValueKind.Object);
            if (withReading != 1000)
            {
                throw new BenchFailure($"GET /api/devices?limit=1000 shows a latest reading for {withReading} devices, not 1000.");
            }
        }

        var one = new List<TimeSpan>();
        for (var run = 0; run < 20; run++)
        {
            var timer = Stopwatch.StartNew();
            await GetJsonAsync(http, $"/api/devices/{Device}/telemetry/latest", cancellationToken);
            one.Add(timer.Elapsed);
        }

        return
        [
            new ResultRow("GET /api/devices?limit=1000, each device with its newest reading (median of 5)", Report.Milliseconds(Median(list).TotalMilliseconds),
                "one query: per device a seek in the (DeviceId, Id) index"),
            new ResultRow($"GET …/{Device}/telemetry/latest (median of 20)", Report.Milliseconds(Median(one).TotalMilliseconds)),
        ];
    }

    // A device publishes ProbeRate readings a second, each with its own message id, until `until` completes (or for 4 s);
    // each reading's latency is from its publish to its event on GET /api/events.
    private static async Task<(LatencySummary Latency, long Count)> ProbeAsync(MosquittoBroker broker, HttpClient http, string deviceId, Task? until,
        CancellationToken cancellationToken)
    {
        var sent = new Dictionary<string, long>();
        var latencies = new List<TimeSpan>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var published = 0;
        var done = false;
        using var response = await http.GetAsync($"/api/events?deviceId={deviceId}", HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken), Encoding.UTF8);
        var reading = Task.Run(async () =>
        {
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    continue;
                }

                var arrived = Stopwatch.GetTimestamp();
                using var e = JsonDocument.Parse(line.AsMemory(6));
                if (!e.RootElement.TryGetProperty("messageKey", out var key))
                {
                    continue;
                }

                lock (sent)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(sent[key.GetString()!], arrived));
                    if (done && latencies.Count == published)
                    {
                        all.TrySetResult();
                    }
                }
            }
        }, cancellationToken);

        var client = MqttClients.Factory.CreateMqttClient();
        await MqttClients.ConnectAsync(client, MqttClients.Options(broker, deviceId).Build(), cancellationToken);
        var pace = Stopwatch.StartNew();
        while (until is null ? pace.Elapsed < TimeSpan.FromSeconds(4) : !until.IsCompleted)
        {
            var key = $"{deviceId}-{published}";
            var payload = Encoding.UTF8.GetBytes($$"""{"deviceId":"{{deviceId}}","messageType":"DATA","temp":21.5,"messageId":"{{key}}"}""");
            lock (sent)
            {
                sent[key] = Stopwatch.GetTimestamp();
            }

            await MqttClients.PublishAsync(client, MqttClients.Message(TopicRoots.Default.For(deviceId).Data, payload, MqttQualityOfServiceLevel.AtLeastOnce), cancellationToken);
            published++;
            var due = TimeSpan.FromSeconds((double)published / ProbeRate);
            if (due > pace.Elapsed)
            {
                await Task.Delay(due - pace.Elapsed, cancellationToken);
            }
        }

        lock (sent)
        {
            done = true;
            if (latencies.Count == published)
            {
                all.TrySetResult();
            }
        }

        await all.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
        await client.DisconnectAsync(cancellationToken: cancellationToken);
        client.Dispose();
        response.Dispose();
        await reading.ContinueWith(_ => { }, TaskScheduler.Default);
        lock (sent)
        {
            return (LatencySummary.Of(latencies), published);
        }
    }

    // The retention run at start has finished once its metric shows a last run.
    private static Task RetentionFinishedAsync(HttpClient http, CancellationToken cancellationToken) =>
        Eventually.UntilAsync(async () => (await http.GetStringAsync("/metrics", cancellationToken)).Split('\n')
                .Any(l => l.StartsWith("iot_gateway_retention_last_run_timestamp_seconds ", StringComparison.Ordinal) && !l.EndsWith(" 0", StringComparison.Ordinal)),
            static finished => finished, TimeSpan.FromMinutes(10), "the retention run finishes", cancellationToken, TimeSpan.FromMilliseconds(100));

    private static string Latency(LatencySummary s) =>
        $"{Report.Milliseconds(s.P50Ms)} / {Report.Milliseconds(s.P99Ms)} / {Report.Milliseconds(s.MaxMs)}";

    private static HttpClient Client(BenchGateway gateway)
    {
        var http = new HttpClient { BaseAddress = gateway.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        http.DefaultRequestHeaders.Add("X-API-Key", gateway.ApiKey);
        return http;
    }

    private static async Task<JsonElement> GetJsonAsync(HttpClient http, string url, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(url, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new BenchFailure($"GET {url} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }

        return await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
    }

    private static string Stamp(DateTimeOffset at) => Uri.EscapeDataString(at.ToString("O", CultureInfo.InvariantCulture));

    private static TimeSpan Median(List<TimeSpan> values) => values.Order().ElementAt(values.Count / 2);

    /// <summary>
    /// The device's N readings over the last two days, each followed by one of another device (1,000 of them, in turn),
    /// as the gateway writes them; the seeder gives each device its row and counter.
    /// </summary>
    private static void Seed(string databasePath, int readings, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var first = now - Span;
        var step = Span.Ticks / readings;
        IEnumerable<(string, SeededReadings.Reading)> Interleaved()
        {
            for (var i = 0; i < readings; i++)
            {
                var at = first.AddTicks(i * step);
                var temp = (20 + i % 1000 / 100.0).ToString("0.0#", CultureInfo.InvariantCulture);
                foreach (var id in new[] { Device, Other(i % OtherDevices) })
                {
                    var payload = $$"""{"deviceId":"{{id}}","messageType":"DATA","temp":{{temp}},"lat":48.01,"lng":-88.62,"messageId":"m-{{i}}"}""";
                    yield return (id, new SeededReadings.Reading(at, payload, MessageKey: $"m-{i}"));
                }
            }
        }

        SeededReadings.Insert(GatewayStorage.Sqlite(databasePath), Interleaved(), cancellationToken);
        GatewayDatabase.Checkpoint(databasePath);
    }

    private static string Other(int d) => $"reads-{d + 1:D4}";

    [GeneratedRegex(@"Retention: (?<deleted>\d+) readings received before .*? deleted in (?<transactions>\d+) transactions, (?<seconds>[\d.]+) s; transactions took (?<median>[\d.]+) ms \(median\), (?<longest>[\d.]+) ms at most")]
    private static partial Regex RetentionLine();
}
