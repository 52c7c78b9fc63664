using System.Globalization;
using IotGateway.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IotGateway.Tests.Gateway;

// What operators read beyond the pages of readings: the newest reading, aggregates and exports, end to end through
// Mosquitto into the database and back out of the API, with the values checked against what the test published.
public sealed class SqliteTelemetryReadTests : TelemetryReadTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;

    // Stored data may hold anything ingest let through, now or in an older version: every read route answers.
    // SQLite only for now, because of a bug: on PostgreSQL the aggregate casts every Json payload with "Payload"::jsonb,
    // and one that jsonb refuses (a lone surrogate escape, JSON cut short) fails the whole query with 22P02, so
    // GET …/aggregate answers 500 (TelemetrySql.AggregateAsync). The page, latest, device and export routes answer.
    [Fact]
    public async Task HostileStoredPayloadsNeverFailAReadRoute()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        var at = DateTimeOffset.UtcNow.AddMinutes(-5);
        string[] hostile =
        [
            new string('[', 2000) + new string(']', 2000),       // deeper than SQLite's and System.Text.Json's limits
            """{"temp":"\ud800","v":1}""",                          // half a surrogate pair
            """{"temp":1e400}""",                                   // not a finite double
            """{"temp":"21.5"}""",                                  // a number in a string
            """{"temp":""",                                         // cut short, yet marked Json
            """{"temp":[1,2]}""",
            """{"temp":true}""",
        ];
        SeededReadings.Insert(gateway.DatabasePath, "odd",
        [
            new(at, """{"temp":20}"""),
            .. hostile.Select((p, i) => new SeededReadings.Reading(at.AddSeconds(i + 1), p)),
            new(at.AddSeconds(20), "not json at all", "Text"),
            new(at.AddSeconds(21), "AAEC/w==", "Binary"),
        ]);
        var total = hostile.Length + 3;

        var page = await gateway.Http.GetFromJsonAsync<Page<ReadingView>>("/api/devices/odd/telemetry", GatewayApp.Json);
        Assert.Equal(total, page!.Items.Count);
        var ascending = page.Items.OrderBy(r => r.Id).ToList();
        Assert.Equal(20, ascending[0].Payload.GetProperty("temp").GetInt32());
        Assert.Equal(JsonValueKind.String, ascending[1].Payload.ValueKind); // too deep: served as its text
        Assert.Equal("\uFFFD", ascending[2].Payload.GetProperty("temp").GetString()); // half a surrogate pair: repaired (JsonText)
        Assert.Equal("1e400", ascending[3].Payload.GetProperty("temp").GetRawText());
        Assert.Equal(hostile[4], ascending[5].Payload.GetString());
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync("/api/devices/odd/telemetry/latest")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync("/api/devices/odd")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync("/api/devices")).StatusCode);

        var aggregate = await gateway.Http.GetFromJsonAsync<AggregateAnswer>(
            $"/api/devices/odd/telemetry/aggregate?field=temp&interval=1h&from={Uri.EscapeDataString(at.AddHours(-1).ToString("O"))}", GatewayApp.Json);
        Assert.Equal(1, aggregate!.Items.Sum(i => i.Count));
        Assert.Equal(20, aggregate.Items.Single(i => i.Count == 1).Max);
        Assert.Equal(total - 1, aggregate.Skipped);

        var ndjson = await gateway.Http.GetStringAsync("/api/devices/odd/telemetry/export?format=ndjson");
        var lines = ndjson.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(total, lines.Length);
        Assert.All(lines, line => JsonDocument.Parse(line).Dispose());
        var csv = Csv.Parse(await gateway.Http.GetStringAsync("/api/devices/odd/telemetry/export?format=csv"));
        Assert.Equal(total + 1, csv.Count);
        Assert.Equal(hostile, csv.Skip(2).Take(hostile.Length).Select(row => row[6]));
    }

    // The request is refused before any query: one provider is enough.
    [Theory]
    [InlineData("field=&interval=1m", "field")]
    [InlineData("field=a..b&interval=1m", "field")]
    [InlineData("field=$.temp&interval=1m", "field")]
    [InlineData("field=temp%22)--&interval=1m", "field")]
    [InlineData("field=temp&interval=", "interval")]
    [InlineData("field=temp&interval=0s", "interval")]
    [InlineData("field=temp&interval=5w", "interval")]
    [InlineData("field=temp&interval=-10", "interval")]
    [InlineData("field=temp&interval=367d", "interval")]
    [InlineData("field=temp&interval=1m&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from")]
    [InlineData("field=temp&interval=10s&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", "100,000")]
    public async Task AggregateRefusesWhatItCannotAnswer(string query, string mentioned)
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        SeededReadings.Insert(gateway.DatabasePath, "known", []);
        var response = await gateway.Http.GetAsync($"/api/devices/known/telemetry/aggregate?{query}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(mentioned, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}

public sealed class PostgresTelemetryReadTests : TelemetryReadTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class TelemetryReadTests
{
    protected abstract DatabaseProvider Provider { get; }

    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    // An hour boundary, so 1m, 10s and 1h intervals start at known times.
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 10, 0, 0, TimeSpan.Zero);

    [SkippableFact]
    public async Task ACsvExportNeverHandsASpreadsheetAFormulaADeviceWrote()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, provider: Provider);
        var at = DateTimeOffset.UtcNow.AddMinutes(-5);
        string[] formulas = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1"];
        SeededReadings.Insert(gateway.Storage, "sheet",
        [
            .. formulas.Select((p, i) => new SeededReadings.Reading(at.AddSeconds(i), p, "Text")),
            new(at.AddSeconds(10), "-12.5", "Text"),
            new(at.AddSeconds(11), "+/8AAA==", "Binary"),
            new(at.AddSeconds(12), """{"temp":-1}"""),
        ]);

        var csv = Csv.Parse(await gateway.Http.GetStringAsync("/api/devices/sheet/telemetry/export?format=csv"));
        var payloads = csv.Skip(1).Select(row => row[6]).ToList();
        Assert.Equal(formulas.Select(f => "'" + f), payloads.Take(formulas.Length));
        // A number, base64 and JSON stay as they were stored.
        Assert.Equal(["-12.5", "+/8AAA==", """{"temp":-1}"""], payloads.Skip(formulas.Length));
        // NDJSON is not opened by spreadsheets: it keeps the text as the device sent it.
        Assert.Contains(JsonSerializer.Serialize(formulas[0]), await gateway.Http.GetStringAsync("/api/devices/sheet/telemetry/export?format=ndjson"), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task EveryDeviceRouteAnswers404ForADeviceNeverSeen()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, provider: Provider);
        SeededReadings.Insert(gateway.Storage, "known", [new(DateTimeOffset.UtcNow.AddMinutes(-1), """{"temp":1}""")]);
        string[] routes =
        [
            "", "/telemetry", "/telemetry/latest", "/telemetry/aggregate?field=temp&interval=1m", "/telemetry/export", "/telemetry/export?format=ndjson",
            "/commands",
        ];
        foreach (var route in routes)
        {
            Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync($"/api/devices/known{route}")).StatusCode);
            var response = await gateway.Http.GetAsync($"/api/devices/never-seen{route}");
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"GET /api/devices/never-seen{route}: {(int)response.StatusCode}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("Unknown device", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
        }

        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.DeleteAsync("/api/devices/never-seen")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.PostAsJsonAsync("/api/devices/never-seen/commands", new { command = "PING" })).StatusCode);
    }

    [SkippableFact]
    public async Task NewestReadingIsServedAloneAndWithItsDevice()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, provider: Provider);
        await using var lamp = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "lamp");
        await using var quiet = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "quiet");
        await quiet.PublishAsync(TopicRoots.Default.For("quiet").Register, "SIGN_IN", retain: true);
        for (var i = 1; i <= 3; i++)
        {
            await lamp.PublishAsync(TopicRoots.Default.For("lamp").Data, $$"""{"temp":{{20 + i}},"messageId":"lamp-{{i}}"}""");
        }

        await gateway.WaitForDeviceAsync("lamp", d => d.TelemetryCount == 3, "the three readings are stored");
        await gateway.WaitForDeviceAsync("quiet", d => d.SignedIn, "the quiet device is known");

        var latest = await gateway.Http.GetFromJsonAsync<ReadingView>("/api/devices/lamp/telemetry/latest", GatewayApp.Json);
        Assert.Equal("lamp-3", latest!.MessageKey);
        Assert.Equal(23, latest.Payload.GetProperty("temp").GetInt32());

        var device = await gateway.GetDeviceAsync("lamp");
        Assert.Equal(latest, device!.LatestReading, ReadingComparer.Instance);

        var page = await gateway.Http.GetFromJsonAsync<Page<DeviceView>>("/api/devices", GatewayApp.Json);
        Assert.Equal(latest, page!.Items.Single(d => d.Id == "lamp").LatestReading, ReadingComparer.Instance);
        Assert.Null(page.Items.Single(d => d.Id == "quiet").LatestReading);

        var none = await gateway.Http.GetAsync("/api/devices/quiet/telemetry/latest");
        Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        Assert.Equal("No readings", (await none.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
        var unknown = await gateway.Http.GetAsync("/api/devices/never-seen/telemetry/latest");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("Unknown device", (await unknown.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
    }

    [SkippableFact]
    public async Task AggregatesPerIntervalMatchThePublishedReadings()
    {
        await using var broker = await StartBrokerAsync();
        var time = new FakeTimeProvider(Start);
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s.SlowPeriodicTimers(), s => s.AddSingleton<TimeProvider>(time), provider: Provider);
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "thermo");
        var published = 0;
        async Task PublishAtAsync(int seconds, string payload)
        {
            time.SetUtcNow(Start.AddSeconds(seconds));
            await device.PublishAsync(TopicRoots.Default.For("thermo").Data, payload, MqttQualityOfServiceLevel.AtLeastOnce);
            var expected = ++published;
            await gateway.WaitForDeviceAsync("thermo", d => d.TelemetryCount == expected, $"reading {expected} is stored");
        }

        await PublishAtAsync(5, """{"temp":20}""");
        await PublishAtAsync(30, """{"temp":22.5,"sensors":{"temp":1}}""");
        await PublishAtAsync(50, """{"temp":"hot"}""");          // a string: skipped
        await PublishAtAsync(70, """{"temp":30}""");
        await PublishAtAsync(80, """{"sensors":{"temp":5}}""");  // no top-level temp: skipped
        await PublishAtAsync(180, """{"temp":-4.5}""");
        await PublishAtAsync(185, "warm");                      // not JSON: skipped
        await PublishAtAsync(3700, """{"temp":100}""");          // the next hour, outside the range below

        var minutes = await AggregateAsync(gateway, "field=temp&interval=1m", Start, Start.AddHours(1));
        Assert.Equal(60, minutes.IntervalSeconds);
        Assert.Equal(AggregateRequest.MaxIntervals, minutes.MaxIntervals);
        Assert.Equal(
            [
                new AggregateItem(Start, 2, 20, 22.5, 21.25, 1),
                new AggregateItem(Start.AddMinutes(1), 1, 30, 30, 30, 1),
                new AggregateItem(Start.AddMinutes(3), 1, -4.5, -4.5, -4.5, 1),
            ],
            minutes.Items);
        Assert.Equal(3, minutes.Skipped);

        // The same in seconds, and in other units.
        Assert.Equal(minutes.Items, (await AggregateAsync(gateway, "field=temp&interval=60", Start, Start.AddHours(1))).Items);
        var tens = await AggregateAsync(gateway, "field=temp&interval=10s", Start, Start.AddHours(1));
        Assert.Equal([0, 30, 50, 70, 80, 180], tens.Items.Select(i => (int)(i.Start - Start).TotalSeconds));
        Assert.Equal([1L, 1, 0, 1, 0, 1], tens.Items.Select(i => i.Count));
        Assert.Null(tens.Items[2].Avg);
        var hours = await AggregateAsync(gateway, "field=temp&interval=1h", Start, Start.AddHours(2));
        Assert.Equal([new AggregateItem(Start, 4, -4.5, 30, (20 + 22.5 + 30 - 4.5) / 4, 3), new AggregateItem(Start.AddHours(1), 1, 100, 100, 100, 0)],
            hours.Items);
        var day = await AggregateAsync(gateway, "field=temp&interval=1d", Start.AddMinutes(1), Start.AddMinutes(2));
        Assert.Equal([new AggregateItem(new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero), 1, 30, 30, 30, 1)], day.Items);

        // A nested field: only the two readings that have it count.
        var nested = await AggregateAsync(gateway, "field=sensors.temp&interval=1h", Start, Start.AddHours(1));
        Assert.Equal([new AggregateItem(Start, 2, 1, 5, 3, 5)], nested.Items);

        // Defaults: to is now, from 100 intervals before it.
        time.Advance(TimeSpan.FromSeconds(1));
        var recent = await gateway.Http.GetFromJsonAsync<AggregateAnswer>("/api/devices/thermo/telemetry/aggregate?field=temp&interval=10s", GatewayApp.Json);
        Assert.Equal(time.GetUtcNow(), recent!.To);
        Assert.Equal(time.GetUtcNow().AddSeconds(-1000), recent.From);
        Assert.Equal([100.0], recent.Items.Select(i => i.Max!.Value));
    }

    [SkippableFact]
    public async Task ExportStreamsThePublishedReadingsAsCsvAndNdjson()
    {
        await using var broker = await StartBrokerAsync();
        var time = new FakeTimeProvider(Start);
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s.SlowPeriodicTimers(), s => s.AddSingleton<TimeProvider>(time), provider: Provider);
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "meter");
        string[] payloads =
        [
            """{"kwh":1.5,"note":"first, with a comma"}""",
            """{"kwh":2,"note":"a \"quoted\" word"}""",
            "{\n  \"kwh\": 3,\n  \"lines\": \"on several lines\"\n}",
            "plain text, not JSON",
        ];
        for (var i = 0; i < payloads.Length; i++)
        {
            time.SetUtcNow(Start.AddMinutes(i));
            await device.PublishAsync(TopicRoots.Default.For("meter").Data, payloads[i], MqttQualityOfServiceLevel.AtLeastOnce);
            var expected = i + 1;
            await gateway.WaitForDeviceAsync("meter", d => d.TelemetryCount == expected, $"reading {expected} is stored");
        }

        time.Advance(TimeSpan.FromSeconds(1)); // "to" defaults to now, and is exclusive
        var stored = (await gateway.Http.GetFromJsonAsync<Page<ReadingView>>("/api/devices/meter/telemetry", GatewayApp.Json))!.Items.Reverse().ToList();

        using var csv = await gateway.Http.GetAsync("/api/devices/meter/telemetry/export?format=csv", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.Equal("text/csv", csv.Content.Headers.ContentType?.MediaType);
        Assert.Equal("attachment", csv.Content.Headers.ContentDisposition?.DispositionType);
        Assert.Equal("meter-telemetry-20260301T100301Z.csv", csv.Content.Headers.ContentDisposition?.FileName);
        var rows = Csv.Parse(await csv.Content.ReadAsStringAsync());
        Assert.Equal(["id", "deviceId", "receivedAt", "topic", "format", "messageKey", "payload"], rows[0]);
        Assert.Equal(payloads.Length + 1, rows.Count);
        for (var i = 0; i < payloads.Length; i++)
        {
            var row = rows[i + 1];
            Assert.Equal(stored[i].Id.ToString(CultureInfo.InvariantCulture), row[0]);
            Assert.Equal("meter", row[1]);
            Assert.Equal(Start.AddMinutes(i), DateTimeOffset.Parse(row[2], CultureInfo.InvariantCulture));
            Assert.Equal(TopicRoots.Default.For("meter").Data, row[3]);
            Assert.Equal(i < 3 ? "Json" : "Text", row[4]);
            Assert.Equal(payloads[i], row[6]);
        }

        // NDJSON, the middle of the range only: from inclusive, to exclusive.
        var range = $"from={Uri.EscapeDataString(Start.AddMinutes(1).ToString("O"))}&to={Uri.EscapeDataString(Start.AddMinutes(3).ToString("O"))}";
        using var ndjson = await gateway.Http.GetAsync($"/api/devices/meter/telemetry/export?format=ndjson&{range}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("application/x-ndjson", ndjson.Content.Headers.ContentType?.MediaType);
        Assert.Equal("meter-telemetry-20260301T100100Z-20260301T100300Z.ndjson", ndjson.Content.Headers.ContentDisposition?.FileName);
        var lines = (await ndjson.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        var second = JsonDocument.Parse(lines[0]).RootElement;
        Assert.Equal(stored[1].Id, second.GetProperty("id").GetInt64());
        Assert.Equal("a \"quoted\" word", second.GetProperty("payload").GetProperty("note").GetString());
        var third = JsonDocument.Parse(lines[1]).RootElement;
        Assert.Equal("on several lines", third.GetProperty("payload").GetProperty("lines").GetString()); // one line, still the same JSON
        Assert.Equal(Start.AddMinutes(2), third.GetProperty("receivedAt").GetDateTimeOffset());

        var xml = await gateway.Http.GetAsync("/api/devices/meter/telemetry/export?format=xml");
        Assert.Equal(HttpStatusCode.BadRequest, xml.StatusCode);
        Assert.Contains("csv or ndjson", await xml.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static async Task<AggregateAnswer> AggregateAsync(GatewayApp gateway, string query, DateTimeOffset from, DateTimeOffset to)
    {
        var url = $"/api/devices/thermo/telemetry/aggregate?{query}&from={Uri.EscapeDataString(from.ToString("O"))}&to={Uri.EscapeDataString(to.ToString("O"))}";
        var response = await gateway.Http.GetAsync(url);
        Assert.True(response.IsSuccessStatusCode, $"GET {url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var answer = (await response.Content.ReadFromJsonAsync<AggregateAnswer>(GatewayApp.Json))!;
        Assert.Equal(from, answer.From);
        Assert.Equal(to, answer.To);
        return answer;
    }

    protected async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return await MosquittoBroker.StartAsync();
    }

    // Records holding a JsonElement compare it by reference: compare its text instead.
    private sealed class ReadingComparer : IEqualityComparer<ReadingView?>
    {
        public static readonly ReadingComparer Instance = new();

        public bool Equals(ReadingView? x, ReadingView? y) =>
            x is null || y is null ? x is null && y is null : x with { Payload = default } == y with { Payload = default } && x.Payload.GetRawText() == y.Payload.GetRawText();

        public int GetHashCode(ReadingView? obj) => obj?.Id.GetHashCode() ?? 0;
    }
}
