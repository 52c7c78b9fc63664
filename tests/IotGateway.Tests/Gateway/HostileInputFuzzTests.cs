using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace IotGateway.Tests.Gateway;

// Generated hostile input on every topic the gateway reads, interleaved with good readings, through the real broker
// into the real SQLite file. Whatever comes: every good reading is stored, every message is acknowledged (a restart of
// the gateway's session gets nothing back), readiness holds, and no read route fails on what was stored. The seed is
// printed; FUZZ_SEED=<seed> replays a run.
public sealed class HostileInputFuzzTests(ITestOutputHelper output)
{
    private const int Messages = 400;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // Letters of other scripts and every punctuation mark the grammar allows: these must be reachable through the API.
    private static readonly string[] GoodDevices = ["fz-a", "温度計-1", "sensor.1", "a:b@c~d_e", "Ωmega", "x..y"];

    [SkippableFact]
    public async Task HostileMessagesThroughMosquittoNeverStallIngestOrBreakAReadRoute()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, Settings);
        await RunAsync(gateway, broker.Host, broker.Port, brokerPassesControlCharacters: false, checkAcknowledgements: true);
    }

    // MQTTnet's broker passes on what Mosquitto refuses: control characters in topics, user properties that are not UTF-8.
    [Fact]
    public async Task HostileMessagesThroughTheEmbeddedBrokerNeverStallIngestOrBreakAReadRoute()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(Settings);
        await using var gateway = started;
        // The embedded broker's sessions live in the gateway's process: a restart cannot show what was acknowledged.
        await RunAsync(gateway, "127.0.0.1", port, brokerPassesControlCharacters: true, checkAcknowledgements: false);
    }

    private static void Settings(Dictionary<string, string?> settings)
    {
        settings["Ingest:MaxPayloadBytes"] = "65536";
        settings["Logging:LogLevel:IotGateway.Ingest.IngestWriter"] = "Debug"; // duplicates are logged at Debug
    }

    private async Task RunAsync(GatewayApp gateway, string host, int port, bool brokerPassesControlCharacters, bool checkAcknowledgements)
    {
        var seed = HostileMessages.SeedFromEnvironment();
        output.WriteLine($"FUZZ_SEED={seed}");
        try
        {
            await using var device = await TestMqttClient.ConnectAsync(host, port, $"fuzzer-{seed}");
            foreach (var id in GoodDevices)
            {
                await device.PublishAsync(TopicRoots.Default.For(id).Register, "SIGN_IN");
            }

            foreach (var id in GoodDevices)
            {
                await gateway.WaitForDeviceAsync(id, d => d.SignedIn, $"{id} signs in");
            }

            var commands = new List<Guid>();
            foreach (var id in GoodDevices.Take(3))
            {
                commands.Add((await gateway.QueueCommandAsync(id, new { command = "PING" })).Id);
            }

            var generator = new HostileMessages(seed, GoodDevices, commands, brokerPassesControlCharacters);
            var sent = generator.Generate(Messages).ToList();
            var random = new Random(seed);
            foreach (var message in sent)
            {
                await PublishAsync(device, message, random.Next(2) == 0 ? MqttQualityOfServiceLevel.AtLeastOnce : MqttQualityOfServiceLevel.ExactlyOnce);
            }

            // Messages are stored in arrival order: once the marker is in, everything before it has been handled.
            await PublishAsync(device, generator.GoodReading() with { GoodKey = "marker-1" }, MqttQualityOfServiceLevel.AtLeastOnce, "marker-1");
            await Eventually.UntilAsync(() => StoredKeys(gateway).Contains("marker-1"), Timeout, "everything published has been handled");

            var stored = StoredKeys(gateway);
            var missing = sent.Where(m => m.GoodKey is not null && !stored.Contains(m.GoodKey)).ToList();
            Assert.True(missing.Count == 0, $"good readings not stored: {string.Join(", ", missing.Select(m => m.GoodKey))}");

            output.WriteLine($"{sent.Count} messages ({sent.Count(m => m.GoodKey is not null)} good), {StoredRows(gateway)} readings stored, {HandledLines(gateway)} rejected or answered");
            await AssertReadRoutesAnswerAsync(gateway, commands);
            Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync("/health/ready")).StatusCode);

            if (checkAcknowledgements)
            {
                // An unacknowledged message is delivered again when the session reconnects, before anything newer.
                var handled = HandledLines(gateway);
                var rows = StoredRows(gateway);
                await gateway.RestartAsync();
                await PublishAsync(device, generator.GoodReading(), MqttQualityOfServiceLevel.AtLeastOnce, "marker-2");
                await Eventually.UntilAsync(() => StoredKeys(gateway).Contains("marker-2"), Timeout, "the reading after the restart is stored");
                Assert.Equal(rows + 1, StoredRows(gateway));
                Assert.Equal(handled, HandledLines(gateway));
            }
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException($"Fuzz run failed; replay with FUZZ_SEED={seed}. {ex.Message}", ex);
        }
    }

    private static async Task PublishAsync(TestMqttClient device, HostileMessage message, MqttQualityOfServiceLevel qos, string? key = null)
    {
        var payload = key is null ? message.Payload : System.Text.Encoding.UTF8.GetBytes($$"""{"temp":1,"messageId":"{{key}}"}""");
        var builder = new MqttApplicationMessageBuilder().WithTopic(message.Topic).WithPayload(payload).WithQualityOfServiceLevel(qos);
        if (message.UserMessageId is { } id)
        {
            builder.WithUserProperty("message-id", id.AsMemory());
        }

        using var timeout = new CancellationTokenSource(TestMqttClient.DefaultTimeout);
        var result = await device.Client.PublishAsync(builder.Build(), timeout.Token);
        // The embedded broker refuses some hostile messages itself (a payload over Ingest:MaxPayloadBytes, a topic
        // holding NUL), with a reason code; never a good reading.
        var refusedByBroker = message.GoodKey is null && key is null
            && result.ReasonCode is MqttClientPublishReasonCode.QuotaExceeded or MqttClientPublishReasonCode.TopicNameInvalid;
        if ((int)result.ReasonCode >= 0x80 && !refusedByBroker)
        {
            throw new InvalidOperationException($"Publishing to '{message.Topic}' was refused: {result.ReasonCode} {result.ReasonString}");
        }
    }

    // Every device the API lists, each of its routes, every page of its readings, and every command: 200 and a body
    // that is whole JSON.
    private static async Task AssertReadRoutesAnswerAsync(GatewayApp gateway, IReadOnlyList<Guid> commands)
    {
        var devices = await ReadJsonAsync<Page<DeviceView>>(gateway, "/api/devices?limit=1000");
        Assert.All(GoodDevices, id => Assert.Contains(devices.Items, d => d.Id == id));
        foreach (var device in devices.Items)
        {
            var path = $"/api/devices/{Uri.EscapeDataString(device.Id)}";
            await ReadJsonAsync<DeviceView>(gateway, path);
            await ReadJsonAsync<JsonElement>(gateway, $"{path}/commands?limit=1000");
            string? cursor = null;
            do
            {
                var page = await ReadJsonAsync<JsonElement>(gateway, $"{path}/telemetry?limit=50{(cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}")}");
                cursor = page.GetProperty("nextCursor").GetString();
            }
            while (cursor is not null);
        }

        foreach (var id in commands)
        {
            await ReadJsonAsync<JsonElement>(gateway, $"/api/commands/{id}");
        }
    }

    private static async Task<T> ReadJsonAsync<T>(GatewayApp gateway, string path)
    {
        using var response = await gateway.Http.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path}: {(int)response.StatusCode} {body}");
        using (JsonDocument.Parse(body))
        {
            // A truncated body would not parse.
        }

        return JsonSerializer.Deserialize<T>(body, GatewayApp.Json)!;
    }

    // What the gateway did with each message, as its log says: a redelivered one would add a line.
    private static int HandledLines(GatewayApp gateway) =>
        gateway.Logs.Lines.Count(l => l.Contains("Message rejected (", StringComparison.Ordinal) || l.Contains("ignored: the command is", StringComparison.Ordinal)
            || l.Contains("IotGateway.Ingest.IngestWriter: Command ", StringComparison.Ordinal) || l.Contains("Duplicate reading", StringComparison.Ordinal));

    private static HashSet<string> StoredKeys(GatewayApp gateway)
    {
        using var connection = new SqliteConnection($"Data Source={gateway.DatabasePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """SELECT "MessageKey" FROM "Telemetry" WHERE "MessageKey" IS NOT NULL""";
        using var reader = command.ExecuteReader();
        var keys = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read())
        {
            keys.Add(reader.GetString(0));
        }

        return keys;
    }

    private static long StoredRows(GatewayApp gateway)
    {
        using var connection = new SqliteConnection($"Data Source={gateway.DatabasePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """SELECT COUNT(*) FROM "Telemetry" """;
        return (long)command.ExecuteScalar()!;
    }
}
