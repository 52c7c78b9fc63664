using System.Globalization;
using System.Text.RegularExpressions;
using IotGateway.Commands;

namespace IotGateway.Tests.Gateway;

// The README's metrics table, held against the real /metrics text after real traffic: every metric it documents must
// be exposed (and have moved where the traffic should have moved it), and every iot_gateway_ metric exposed must be
// documented. In-process: each host's instruments are its own (IMeterFactory), so parallel tests do not move them.
public sealed partial class MetricsDocumentedTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task EveryMetricTheReadmeListsIsExposedAndMovesWithTraffic()
    {
        var documented = ReadDocumentedMetrics();

        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Ingest:MaxPayloadBytes"] = "1024"); // a test payload can be oversized
        var http = gateway.Http;

        // Documented <-> exposed, from the start (before any traffic, as Prometheus expects): the README's counters and
        // gauges and the gateway's own families are the same set, and every series with a known label is there at 0.
        // A histogram appears with its first observation (OpenTelemetry exports no empty histogram).
        var first = await ScrapeAsync(http);
        var families = ExposedFamilies(first);
        var exposed = families.Where(f => f.StartsWith(Prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(documented.Where(d => !d.Value.Histogram).Select(d => d.Key).Order(StringComparer.Ordinal), exposed);
        foreach (var series in ZeroFromTheStart)
        {
            Assert.True(Value(first, series) == 0, $"{series} is {Value(first, series)?.ToString(CultureInfo.InvariantCulture) ?? "absent"} before any traffic, expected 0");
        }

        // "plus the .NET runtime's", and nothing nobody asked for (MsQuic's thirty series at 0).
        Assert.True(families.Any(f => f.StartsWith("dotnet_", StringComparison.Ordinal)),
            $"The README promises .NET runtime metrics; /metrics exposes none (dotnet_*). Families: {string.Join(", ", families.Order(StringComparer.Ordinal))}");
        Assert.DoesNotContain(families, f => f.Contains("quic", StringComparison.OrdinalIgnoreCase));

        // A broker outage moves the disconnect counter and the connected gauge, and the reconnect the connect counter.
        await broker.StopAsync();
        await Eventually.UntilAsync(async () => Value(await ScrapeAsync(http), "iot_gateway_broker_connected") == 0,
            Timeout, "the gateway reports the broker disconnected");
        await broker.StartAgainAsync();
        await gateway.WaitUntilReadyAsync(Timeout);

        // A device signs in and sends one reading, the same reading again (a redelivery), and one too large to store.
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "meter-1");
        await device.SubscribeAsync(TopicRoots.Default.For("meter-1").CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For("meter-1").Register, "SIGN_IN", retain: true);
        const string reading = """{"deviceId":"meter-1","messageType":"DATA","temp":21.5,"messageId":"reading-1"}""";
        await device.PublishAsync(TopicRoots.Default.For("meter-1").Data, reading);
        await WaitForDeviceAsync(http, d => d.SignedIn && d.TelemetryCount == 1, "the device is signed in with its reading stored");
        await device.PublishAsync(TopicRoots.Default.For("meter-1").Data, reading);
        await device.PublishAsync(TopicRoots.Default.For("meter-1").Data, $$"""{"deviceId":"meter-1","blob":"{{new string('x', 4096)}}"}""");

        // A command queued, published, answered.
        var post = await http.PostAsJsonAsync("/api/devices/meter-1/commands", new { command = "PING" }, GatewayApp.Json);
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var queued = (await post.Content.ReadFromJsonAsync<QueuedCommand>(GatewayApp.Json))!;
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString(), StringComparison.Ordinal), Timeout);
        // Answered only once it is marked Published: a faster answer takes it from Pending straight to Completed
        // (the Published mark then only fills in publishedAt), and the Published transition would not be counted.
        await Eventually.UntilAsync(async () =>
            await http.GetFromJsonAsync<CommandView>($"/api/commands/{queued.Id}", GatewayApp.Json) is { Status: CommandStatus.Published } c ? c : null,
            Timeout, "the command is marked Published");
        await device.PublishAsync(TopicRoots.Default.For("meter-1").CommandResponse, GatewayEndToEndTests.ArticleAnswer("meter-1", queued.Id, "PING", "PONG"));
        await Eventually.UntilAsync(async () =>
            await http.GetFromJsonAsync<CommandView>($"/api/commands/{queued.Id}", GatewayApp.Json) is { Status: CommandStatus.Completed } c ? c : null,
            Timeout, "the answer is stored");

        // What that traffic must show. Exact where this process saw nothing else; at least, where a reconnect may add.
        var expected = new (string Series, Func<double, bool> Holds, string Description)[]
        {
            ("iot_gateway_messages_received_total{kind=\"Register\"}", v => v >= 1, ">= 1 (the SIGN_IN)"),
            ("iot_gateway_messages_received_total{kind=\"Data\"}", v => v >= 2, ">= 2 (the reading and its redelivery)"),
            ("iot_gateway_messages_received_total{kind=\"CommandResponse\"}", v => v >= 1, ">= 1 (the answer)"),
            ("iot_gateway_readings_stored_total", v => v == 1, "1 (one distinct reading)"),
            ("iot_gateway_readings_duplicate_total", v => v == 1, "1 (the redelivery)"),
            ("iot_gateway_messages_rejected_total{reason=\"oversized\"}", v => v == 1, "1 (the 4 KiB payload)"),
            ("iot_gateway_ingest_lag_seconds_count", v => v >= 1, ">= 1 (a batch was committed)"),
            ("iot_gateway_ingest_queue_length", v => v == 0, "0 (everything is written)"),
            ("iot_gateway_command_transitions_total{status=\"Pending\"}", v => v == 1, "1"),
            ("iot_gateway_command_transitions_total{status=\"Published\"}", v => v == 1, "1"),
            ("iot_gateway_command_transitions_total{status=\"Completed\"}", v => v == 1, "1"),
            ("iot_gateway_command_round_trip_seconds_count", v => v == 1, "1 (one answered command)"),
            ("iot_gateway_broker_connected", v => v == 1, "1 (connected again)"),
            ("iot_gateway_broker_connects_total", v => v >= 2, ">= 2 (start and after the outage)"),
            ("iot_gateway_broker_disconnects_total", v => v >= 1, ">= 1 (the outage)"),
            ("iot_gateway_devices_signed_in", v => v == 1, "1 (meter-1)"),
        };

        // Counters are updated after their commits, so the last of them may trail the API by a moment.
        var scrape = (await Eventually.UntilAsync(async () => new Scrape(await ScrapeAsync(http), expected), s => s.Unmet.Length == 0, Timeout,
            "the counters the traffic should have moved did")).Text;

        // The labels the table names are on the series.
        Assert.Equal(documented.Keys.Order(StringComparer.Ordinal),
            ExposedFamilies(scrape).Where(f => f.StartsWith(Prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal));
        foreach (var (name, (labels, _)) in documented)
        {
            foreach (var label in labels)
            {
                Assert.True(SeriesOf(scrape, name).Any(s => s.Contains($"{label}=\"", StringComparison.Ordinal)),
                    $"The README documents a '{label}' label on {name}, but no series carries it.");
            }
        }
    }

    // One /metrics answer and what it lacks; the lack is what a timeout reports.
    private sealed record Scrape(string Text, string Unmet)
    {
        public Scrape(string text, IEnumerable<(string Series, Func<double, bool> Holds, string Description)> expected)
            : this(text, UnmetIn(text, expected))
        {
        }

        public override string ToString() => Unmet;
    }

    private const string Prefix = "iot_gateway_";

    // The README's metrics table: "| `iot_gateway_name` | type | `label` | what |", name -> labels, and whether it is a histogram.
    private static Dictionary<string, (string[] Labels, bool Histogram)> ReadDocumentedMetrics()
    {
        var rows = MetricsTableRow().Matches(File.ReadAllText(Path.Combine(Repository.Root, "README.md")));
        Assert.True(rows.Count > 0, "README.md no longer has the metrics table (| `iot_gateway_…` | type | labels | what |).");
        return rows.ToDictionary(
            row => row.Groups["name"].Value,
            row => (Regex.Matches(row.Groups["labels"].Value, "`([a-z_]+)`").Select(m => m.Groups[1].Value).ToArray(), row.Groups["type"].Value == "histogram"),
            StringComparer.Ordinal);
    }

    private static async Task<string> ScrapeAsync(HttpClient http) => await http.GetStringAsync("/metrics");

    private static Task<DeviceView> WaitForDeviceAsync(HttpClient http, Func<DeviceView, bool> condition, string because) =>
        Eventually.UntilAsync(async () =>
        {
            using var response = await http.GetAsync("/api/devices/meter-1");
            return response.IsSuccessStatusCode && await response.Content.ReadFromJsonAsync<DeviceView>(GatewayApp.Json) is { } d && condition(d) ? d : null;
        }, Timeout, because);

    // The families (# TYPE lines) of a Prometheus text exposition.
    private static HashSet<string> ExposedFamilies(string scrape) =>
        scrape.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToHashSet(StringComparer.Ordinal);

    // The sample lines (name{labels}) of one family, counter or gauge.
    private static IEnumerable<string> SeriesOf(string scrape, string family) =>
        scrape.Split('\n').Where(l => l.StartsWith(family, StringComparison.Ordinal) && l.Length > family.Length && l[family.Length] is ' ' or '{');

    // The value of one series, name{label="value",…} with the labels it must carry (others, such as otel_scope_name,
    // may be there too); null when absent.
    internal static double? Value(string scrape, string series)
    {
        var wanted = SeriesName().Match(series);
        var name = wanted.Groups["name"].Value;
        var labels = LabelPair().Matches(wanted.Groups["labels"].Value).Select(m => m.Value).ToList();
        foreach (var line in scrape.Split('\n'))
        {
            var sample = SeriesName().Match(line);
            if (sample.Success && sample.Groups["name"].Value == name
                && labels.All(l => LabelPair().Matches(sample.Groups["labels"].Value).Any(m => m.Value == l)))
            {
                return double.Parse(line.AsSpan(sample.Length).Trim(), NumberStyles.Float, CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    // The expectations not met, described for the timeout message ("" when all are).
    private static string UnmetIn(string scrape, IEnumerable<(string Series, Func<double, bool> Holds, string Description)> expected)
    {
        var unmet = new List<string>();
        foreach (var (series, holds, description) in expected)
        {
            var value = Value(scrape, series);
            if (value is not { } v || !holds(v))
            {
                unmet.Add(string.Create(CultureInfo.InvariantCulture, $"{series} is {(value is null ? "absent" : value.Value.ToString(CultureInfo.InvariantCulture))}, expected {description}"));
            }
        }

        return string.Join("; ", unmet);
    }

    private static readonly string[] ZeroFromTheStart =
    [
        "iot_gateway_messages_received_total{kind=\"Data\"}", "iot_gateway_messages_received_total{kind=\"CommandResponse\"}",
        "iot_gateway_messages_received_total{kind=\"Register\"}", "iot_gateway_messages_rejected_total{reason=\"oversized\"}",
        "iot_gateway_embedded_broker_messages_dropped_total",
        "iot_gateway_messages_rejected_total{reason=\"unknown-topic\"}", "iot_gateway_command_transitions_total{status=\"Failed\"}",
        "iot_gateway_command_transitions_total{status=\"Expired\"}", "iot_gateway_command_transitions_total{status=\"Cancelled\"}",
        "iot_gateway_readings_stored_total", "iot_gateway_readings_duplicate_total", "iot_gateway_broker_disconnects_total",
        "iot_gateway_devices_signed_in", "iot_gateway_ingest_queue_length",
    ];

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})?")]
    private static partial Regex SeriesName();

    [GeneratedRegex("[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\]|\\\\.)*\"")]
    private static partial Regex LabelPair();

    [GeneratedRegex(@"^\| `(?<name>iot_gateway_[a-z0-9_]+)` \| (?<type>counter|gauge|histogram) \|(?<labels>[^|]*)\|", RegexOptions.Multiline)]
    private static partial Regex MetricsTableRow();
}
