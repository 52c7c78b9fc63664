using System.Text;
using IotGateway.Commands;
using IotGateway.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using MQTTnet.Formatter;

namespace IotGateway.Tests.Gateway;

// The article's scenarios, end to end: a real Mosquitto, the real gateway, a real database (a SQLite file, and a
// PostgreSQL database of the test run's own cluster), devices played by plain MQTT clients speaking the article's payloads.
public sealed class SqliteGatewayEndToEndTests : GatewayEndToEndTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresGatewayEndToEndTests : GatewayEndToEndTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class GatewayEndToEndTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    protected abstract DatabaseProvider Provider { get; }

    private Task<GatewayApp> StartGatewayAsync(string broker, Action<Dictionary<string, string?>>? configure = null) =>
        GatewayApp.StartAsync(broker, configure, provider: Provider);

    [SkippableFact]
    public async Task DevicePresenceFollowsSignInSignOutAndLastWill()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);

        await using (var device = await ConnectDeviceAsync(broker, "sensor-1"))
        {
            await device.PublishAsync(TopicRoots.Default.For("sensor-1").Register, "SIGN_IN", retain: true);
            var signedIn = await gateway.WaitForDeviceAsync("sensor-1", d => d.SignedIn, "SIGN_IN marks the device signed in");
            Assert.NotNull(signedIn.LastSeen);
            Assert.NotNull(signedIn.SignedInAt);

            await device.PublishAsync(TopicRoots.Default.For("sensor-1").Register, "SIGN_OUT", retain: true);
            await gateway.WaitForDeviceAsync("sensor-1", d => !d.SignedIn, "SIGN_OUT marks it signed out");

            await device.PublishAsync(TopicRoots.Default.For("sensor-1").Register, "SIGN_IN", retain: true);
            await gateway.WaitForDeviceAsync("sensor-1", d => d.SignedIn, "it signs in again");

            // The broker publishes the retained SIGN_OUT will when the connection dies without DISCONNECT.
            await device.DropConnectionAsync();
        }

        var afterWill = await gateway.WaitForDeviceAsync("sensor-1", d => !d.SignedIn, "the Last Will signs the device out");
        Assert.NotNull(afterWill.SignedOutAt);
    }

    [SkippableFact]
    public async Task RetainedPresenceReplayedOnResubscribeCreatesNoDuplicates()
    {
        await using var broker = await StartBrokerAsync();
        await using (var device = await ConnectDeviceAsync(broker, "replayed"))
        {
            await device.PublishAsync(TopicRoots.Default.For("replayed").Register, "SIGN_IN", retain: true);
        }

        // A gateway with a brand-new session receives the retained SIGN_IN on subscribe, twice over two sessions.
        await using var gateway = await StartGatewayAsync(broker.Url, s => s["Logging:LogLevel:IotGateway.Ingest.IngestWriter"] = "Debug");
        var device1 = await gateway.WaitForDeviceAsync("replayed", d => d.SignedIn, "the retained SIGN_IN is replayed");
        Assert.Null(device1.LastSeen);

        // The same database under a new session: the broker replays the retained SIGN_IN into it again.
        await gateway.RestartWithNewSessionAsync();
        await Eventually.UntilAsync(() => gateway.Logs.Lines.Count(l => l.Contains("Device replayed SIGN_IN", StringComparison.Ordinal)) == 2,
            Timeout, "the second session stored the replayed SIGN_IN too");
        Assert.Equal(2, gateway.Logs.Lines.Count(l => l.Contains("session present: False", StringComparison.Ordinal)));
        var page = await gateway.Http.GetFromJsonAsync<Page<DeviceView>>("/api/devices", GatewayApp.Json);
        var replayed = Assert.Single(page!.Items, d => d.Id == "replayed");
        Assert.Equal(device1.SignedInAt, replayed.SignedInAt);
        Assert.Null(replayed.LastSeen);
    }

    [SkippableFact]
    public async Task TelemetryIsStoredAndPagedNewestFirst()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await ConnectDeviceAsync(broker, "thermo");

        for (var i = 0; i < 25; i++)
        {
            await device.PublishAsync(TopicRoots.Default.For("thermo").Data, $$"""{"deviceId":"thermo","messageType":"DATA","temp":{{20 + i}},"messageId":"r{{i}}"}""");
        }

        await gateway.WaitForDeviceAsync("thermo", d => d.TelemetryCount == 25, "25 readings are counted");

        var seen = new List<ReadingView>();
        string? cursor = null;
        do
        {
            var url = "/api/devices/thermo/telemetry?limit=10" + (cursor is null ? "" : $"&cursor={cursor}");
            var page = await gateway.Http.GetFromJsonAsync<Page<ReadingView>>(url, GatewayApp.Json);
            seen.AddRange(page!.Items);
            cursor = page.NextCursor;
        }
        while (cursor is not null);

        Assert.Equal(25, seen.Count);
        Assert.Equal(Enumerable.Range(0, 25).Reverse().Select(i => $"r{i}"), seen.Select(r => r.MessageKey));
        Assert.All(seen, r => Assert.Equal(PayloadFormat.Json, r.Format));
        Assert.Equal(44, seen[0].Payload.GetProperty("temp").GetInt32());

        // A time window: everything received up to now, nothing after.
        var to = Uri.EscapeDataString(seen[0].ReceivedAt.AddTicks(1).ToString("O"));
        var window = await gateway.Http.GetFromJsonAsync<Page<ReadingView>>($"/api/devices/thermo/telemetry?limit=1000&to={to}", GatewayApp.Json);
        Assert.Equal(25, window!.Items.Count);
        var from = Uri.EscapeDataString(seen[0].ReceivedAt.AddTicks(1).ToString("O"));
        var empty = await gateway.Http.GetFromJsonAsync<Page<ReadingView>>($"/api/devices/thermo/telemetry?from={from}", GatewayApp.Json);
        Assert.Empty(empty!.Items);
    }

    // Commands:DefaultTtlSeconds is the TTL of a command that names none, and the broker is told it too;
    // Commands:MaxTtlSeconds refuses a longer one.
    [SkippableFact]
    public async Task ConfiguredTtlDefaultAndLimitApply()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url, s =>
        {
            s["Commands:DefaultTtlSeconds"] = "120";
            s["Commands:MaxTtlSeconds"] = "200";
        });
        await using var device = await SignInAsync(broker, gateway, "ttl-unit");

        var queued = await gateway.QueueCommandAsync("ttl-unit", new { command = "PING" });
        var request = await device.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For("ttl-unit").CommandRequest, Timeout);
        Assert.InRange(request.MessageExpiryInterval, 115u, 120u);
        var stored = await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Published);
        Assert.Equal(120, stored.TtlSeconds);
        Assert.Equal(stored.CreatedAt.AddSeconds(120), stored.ExpiresAt);

        var tooLong = await gateway.Http.PostAsJsonAsync("/api/devices/ttl-unit/commands", new { command = "PING", ttlSeconds = 300 });
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
        Assert.Contains("200", await tooLong.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task CommandReachesConnectedDeviceAndItsAnswerIsStored()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await SignInAsync(broker, gateway, "pump-7");

        var queued = await gateway.QueueCommandAsync("pump-7", new { command = "PING", payload = new { level = 3 }, ttlSeconds = 60 });
        Assert.Equal(CommandStatus.Pending, queued.Status);

        var request = await device.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For("pump-7").CommandRequest, Timeout);
        using var json = JsonDocument.Parse(request.Payload);
        Assert.Equal(queued.Id.ToString(), json.RootElement.GetProperty("uuid").GetString());
        Assert.Equal("PING", json.RootElement.GetProperty("command").GetString());
        Assert.Equal(3, json.RootElement.GetProperty("payload").GetProperty("level").GetInt32());
        // QoS 2, and the broker is told the command's remaining TTL (whole seconds, rounded down).
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, request.QualityOfService);
        Assert.InRange(request.MessageExpiryInterval, 55u, 60u);
        Assert.Equal("application/json", request.ContentType);

        await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Published);
        await device.PublishAsync(TopicRoots.Default.For("pump-7").CommandResponse, ArticleAnswer("pump-7", queued.Id, "PING", "PONG"));

        var done = await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Completed);
        Assert.Equal("PONG", done.Result?.GetString());
        Assert.Equal("commandResp", done.Response!.Value.GetProperty("messageType").GetString());
        Assert.NotNull(done.PublishedAt);
        Assert.NotNull(done.AnsweredAt);
        Assert.True(done.CreatedAt <= done.PublishedAt && done.PublishedAt <= done.AnsweredAt);
        await gateway.WaitForDeviceAsync("pump-7", d => d.PendingCommands == 0, "the answered command is no longer pending");
    }

    [SkippableFact]
    public async Task CommandQueuedWhileDeviceOfflineArrivesOnReconnect()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using (var device = await SignInAsync(broker, gateway, "sleepy"))
        {
            await device.DisconnectAsync();
        }

        var first = await gateway.QueueCommandAsync("sleepy", new { command = "PING" });
        var second = await gateway.QueueCommandAsync("sleepy", new { command = "REPORT" });
        await gateway.WaitForCommandAsync(second.Id, CommandStatus.Published);
        var device2 = await gateway.GetDeviceAsync("sleepy");
        Assert.Equal(2, device2!.PendingCommands);

        // The article's device: same client id, clean start off; the broker hands over what it queued.
        await using var back = await ConnectDeviceAsync(broker, "sleepy", cleanStart: false);
        var m1 = await back.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For("sleepy").CommandRequest && m.Payload.Contains(first.Id.ToString()), Timeout);
        var m2 = await back.WaitForMessageAsync(m => m.Payload.Contains(second.Id.ToString()), Timeout);
        Assert.True(back.ReceivedMessages.ToList().IndexOf(m1) < back.ReceivedMessages.ToList().IndexOf(m2), "commands arrive in the order they were queued");

        await back.PublishAsync(TopicRoots.Default.For("sleepy").CommandResponse, ArticleAnswer("sleepy", first.Id, "PING", "PONG"));
        await gateway.WaitForCommandAsync(first.Id, CommandStatus.Completed);
    }

    [SkippableFact]
    public async Task DeviceSpeakingMqtt311GetsCommandsAndAnswers()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await ConnectDeviceAsync(broker, "old-timer", protocol: MqttProtocolVersion.V311);
        await device.SubscribeAsync(TopicRoots.Default.For("old-timer").CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For("old-timer").Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("old-timer", d => d.SignedIn, "a 3.1.1 device signs in");

        var queued = await gateway.QueueCommandAsync("old-timer", new { command = "PING" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await device.PublishAsync(TopicRoots.Default.For("old-timer").CommandResponse, ArticleAnswer("old-timer", queued.Id, "PING", "PONG"));
        Assert.Equal("PONG", (await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Completed)).Result?.GetString());
    }

    [SkippableFact]
    public async Task CommandQueuedWhileBrokerIsDownIsSentAfterItReturns()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using (var device = await SignInAsync(broker, gateway, "field-unit"))
        {
            await device.DisconnectAsync();
        }

        await broker.StopAsync();
        await Eventually.UntilAsync(async () => (await gateway.Http.GetAsync("/health/ready")).StatusCode == HttpStatusCode.ServiceUnavailable,
            Timeout, "readiness reports the broker outage");

        // The API keeps working: the command is stored and waits.
        var queued = await gateway.QueueCommandAsync("field-unit", new { command = "PING" });
        Assert.Equal(CommandStatus.Pending, (await gateway.GetCommandAsync(queued.Id)).Status);

        await broker.StartAgainAsync();
        await gateway.WaitUntilReadyAsync();
        await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Published);

        await using var back = await ConnectDeviceAsync(broker, "field-unit", cleanStart: false);
        await back.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await back.PublishAsync(TopicRoots.Default.For("field-unit").CommandResponse, ArticleAnswer("field-unit", queued.Id, "PING", "PONG"));
        await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Completed);
        Assert.Single(back.ReceivedMessages, m => m.Payload.Contains(queued.Id.ToString()));
    }

    // Commands queued during an outage are read back from the database after the reconnect, while callers keep
    // queueing more (their lanes started at once): each device still receives every command once, in the order the
    // gateway stored them. With one lane at a time the devices' lanes wait for each other.
    [SkippableTheory]
    [InlineData(256)]
    [InlineData(1)]
    public async Task EachDeviceReceivesItsCommandsOnceInQueueOrderAcrossAnOutageAndConcurrentCallers(int maxConcurrentLanes)
    {
        string[] deviceIds = ["order-a", "order-b", "order-c"];
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url,
            s => s["Commands:MaxConcurrentLanes"] = maxConcurrentLanes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var devices = new List<TestMqttClient>();
        foreach (var deviceId in deviceIds)
        {
            devices.Add(await SignInAsync(broker, gateway, deviceId));
        }

        try
        {
            await broker.StopAsync();
            await Eventually.UntilAsync(async () => (await gateway.Http.GetAsync("/health/ready")).StatusCode == HttpStatusCode.ServiceUnavailable,
                Timeout, "the gateway sees the broker is down");
            for (var i = 0; i < 8; i++)
            {
                foreach (var deviceId in deviceIds)
                {
                    await gateway.QueueCommandAsync(deviceId, new { command = "SET_INTERVAL", payload = new { step = $"outage-{i}" } });
                }
            }

            await broker.StartAgainAsync();
            foreach (var device in devices)
            {
                await device.ReconnectAsync();
                await device.SubscribeAsync(TopicRoots.Default.For(device.ClientId).CommandRequest);
            }

            // Four callers at once, from before the gateway is back until well after.
            await Task.WhenAll(Enumerable.Range(0, 4).Select(caller => Task.Run(async () =>
            {
                for (var i = 0; i < 12; i++)
                {
                    await gateway.QueueCommandAsync(deviceIds[(caller + i) % deviceIds.Length], new { command = "PING", payload = new { step = $"c{caller}-{i}" } });
                }
            })));

            foreach (var device in devices)
            {
                await ReceivedCommands.AssertAllInQueueOrderAsync(gateway, device, 8 + 16, Timeout);
            }
        }
        finally
        {
            foreach (var device in devices)
            {
                await device.DisposeAsync();
            }
        }
    }

    // GET …?waitSeconds=N returns the moment the command finishes, whatever finishes it, or as it is after N seconds.
    [SkippableFact]
    public async Task WaitingForACommandReturnsWhenItFinishes()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await SignInAsync(broker, gateway, "waited-on");

        // Answered: the waiting GET is already running when the device answers.
        var answered = await gateway.QueueCommandAsync("waited-on", new { command = "PING" });
        var waiting = gateway.Http.GetFromJsonAsync<CommandView>($"/api/commands/{answered.Id}?waitSeconds=30", GatewayApp.Json);
        await device.WaitForMessageAsync(m => m.Payload.Contains(answered.Id.ToString()), Timeout);
        await Eventually.UntilAsync(() => gateway.Services.GetRequiredService<CommandCompletion>().IsAwaited(answered.Id), Timeout,
            "the GET is waiting");
        Assert.False(waiting.IsCompleted, "the GET returned before the device answered");
        await device.PublishAsync(TopicRoots.Default.For("waited-on").CommandResponse, ArticleAnswer("waited-on", answered.Id, "PING", "PONG"));
        var done = await waiting.WaitAsync(Timeout);
        Assert.Equal(CommandStatus.Completed, done!.Status);
        Assert.Equal("PONG", done.Result?.GetString());

        // Already finished: at once.
        Assert.Equal(CommandStatus.Completed, (await gateway.Http.GetFromJsonAsync<CommandView>($"/api/commands/{answered.Id}?waitSeconds=60", GatewayApp.Json))!.Status);

        // Nobody answers: after waitSeconds, the command as it is.
        var unanswered = await gateway.QueueCommandAsync("waited-on", new { command = "PING" });
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var stillOpen = await gateway.Http.GetFromJsonAsync<CommandView>($"/api/commands/{unanswered.Id}?waitSeconds=0.2", GatewayApp.Json);
        Assert.Contains(stillOpen!.Status, new[] { CommandStatus.Pending, CommandStatus.Published });
        // .NET timers run on a millisecond tick and may fire up to a tick early against a Stopwatch (0.199 s was seen):
        // the point is that the GET waited instead of answering at once.
        Assert.True(waited.Elapsed >= TimeSpan.FromSeconds(0.18), $"the GET waited the 0.2 s it was asked to (it took {waited.Elapsed.TotalSeconds:0.000} s)");

        // Cancelled and expired commands finish too.
        var waitForCancel = gateway.Http.GetFromJsonAsync<CommandView>($"/api/commands/{unanswered.Id}?waitSeconds=30", GatewayApp.Json);
        await Eventually.UntilAsync(() => gateway.Services.GetRequiredService<CommandCompletion>().IsAwaited(unanswered.Id), Timeout,
            "the GET is waiting");
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.DeleteAsync($"/api/commands/{unanswered.Id}")).StatusCode);
        Assert.Equal(CommandStatus.Cancelled, (await waitForCancel.WaitAsync(Timeout))!.Status);

        var shortLived = await gateway.QueueCommandAsync("waited-on", new { command = "PING", ttlSeconds = 1 });
        var expired = await gateway.Http.GetFromJsonAsync<CommandView>($"/api/commands/{shortLived.Id}?waitSeconds=30", GatewayApp.Json).WaitAsync(Timeout);
        Assert.Equal(CommandStatus.Expired, expired!.Status);
        Assert.False(gateway.Services.GetRequiredService<CommandCompletion>().IsAwaited(shortLived.Id), "no waiter is left behind");
    }

    // POST …/commands?waitSeconds=N queues and waits in one request: 200 with the finished command (whatever finishes
    // it), 202 with the open one when the time is up; the same body as GET /api/commands/{id}, Location as without it.
    [SkippableFact]
    public async Task QueueingWithWaitSecondsAnswersWithTheFinishedCommandOrTheOpenOne()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await SignInAsync(broker, gateway, "sync-caller");
        var completion = gateway.Services.GetRequiredService<CommandCompletion>();

        async Task<(HttpResponseMessage Response, Guid Id)> PostWhileDeviceAnswersAsync(object body, string result)
        {
            device.ClearReceivedMessages();
            var posting = gateway.Http.PostAsJsonAsync("/api/devices/sync-caller/commands?waitSeconds=30", body, GatewayApp.Json);
            var request = await device.WaitForMessageAsync(TopicRoots.Default.For("sync-caller").CommandRequest, Timeout);
            var id = JsonDocument.Parse(request.Payload).RootElement.GetProperty("uuid").GetGuid();
            await Eventually.UntilAsync(() => completion.IsAwaited(id), Timeout, "the POST waits for its command");
            Assert.False(posting.IsCompleted, "the POST answered before the device did");
            await device.PublishAsync(TopicRoots.Default.For("sync-caller").CommandResponse, ArticleAnswer("sync-caller", id, "PING", result));
            return (await posting.WaitAsync(Timeout), id);
        }

        // Answered: 200, the whole command as GET returns it, and where it lives.
        var (answered, answeredId) = await PostWhileDeviceAnswersAsync(new { command = "PING" }, "PONG");
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        var body = await answered.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("Completed", body.GetProperty("status").GetString());
        Assert.Equal("PONG", body.GetProperty("result").GetString());
        Assert.Equal($"/api/commands/{answeredId}", answered.Headers.Location?.AbsolutePath);
        var got = await gateway.Http.GetFromJsonAsync<JsonElement>($"/api/commands/{answeredId}");
        Assert.Equal(got.EnumerateObject().Select(p => p.Name), body.EnumerateObject().Select(p => p.Name));
        Assert.Equal(got.GetProperty("answeredAt").GetString(), body.GetProperty("answeredAt").GetString());

        // An error answer finishes it too: Failed, still 200.
        var (failed, _) = await PostWhileDeviceAnswersAsync(new { command = "PING" }, "ERROR_UNKNOWN_COMMAND");
        Assert.Equal(HttpStatusCode.OK, failed.StatusCode);
        Assert.Equal(CommandStatus.Failed, (await failed.Content.ReadFromJsonAsync<CommandView>(GatewayApp.Json))!.Status);

        // Nobody answers in time: 202 with the open command, Location as without waitSeconds.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var open = await gateway.Http.PostAsJsonAsync("/api/devices/sync-caller/commands?waitSeconds=0.2", new { command = "PING" }, GatewayApp.Json);
        Assert.Equal(HttpStatusCode.Accepted, open.StatusCode);
        Assert.True(waited.Elapsed >= TimeSpan.FromSeconds(0.18), $"the POST waited the 0.2 s it was asked to (it took {waited.Elapsed.TotalSeconds:0.000} s)");
        var openView = (await open.Content.ReadFromJsonAsync<CommandView>(GatewayApp.Json))!;
        Assert.Contains(openView.Status, new[] { CommandStatus.Pending, CommandStatus.Published });
        Assert.Equal("PING", openView.Command);
        Assert.Equal($"/api/commands/{openView.Id}", open.Headers.Location?.AbsolutePath);
        Assert.False(completion.IsAwaited(openView.Id), "no waiter is left behind");

        // Cancelled while the POST waits: 200 Cancelled.
        var posting = gateway.Http.PostAsJsonAsync("/api/devices/sync-caller/commands?waitSeconds=30", new { command = "REBOOT" }, GatewayApp.Json);
        var reboot = await device.WaitForMessageAsync(m => m.Payload.Contains("REBOOT", StringComparison.Ordinal), Timeout);
        var rebootId = JsonDocument.Parse(reboot.Payload).RootElement.GetProperty("uuid").GetGuid();
        await Eventually.UntilAsync(() => completion.IsAwaited(rebootId), Timeout, "the POST waits for its command");
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.DeleteAsync($"/api/commands/{rebootId}")).StatusCode);
        var cancelled = await posting.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        Assert.Equal(CommandStatus.Cancelled, (await cancelled.Content.ReadFromJsonAsync<CommandView>(GatewayApp.Json))!.Status);

        // Expired unanswered: 200 Expired.
        var expiring = await gateway.Http.PostAsJsonAsync("/api/devices/sync-caller/commands?waitSeconds=30", new { command = "PING", ttlSeconds = 1 }, GatewayApp.Json)
            .WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, expiring.StatusCode);
        var expired = (await expiring.Content.ReadFromJsonAsync<CommandView>(GatewayApp.Json))!;
        Assert.Equal(CommandStatus.Expired, expired.Status);
        Assert.False(completion.IsAwaited(expired.Id), "no waiter is left behind");

        // Without waitSeconds, the answer is as before: 202 at once with id, device and status.
        var plain = await gateway.Http.PostAsJsonAsync("/api/devices/sync-caller/commands", new { command = "PING" }, GatewayApp.Json);
        Assert.Equal(HttpStatusCode.Accepted, plain.StatusCode);
        var plainBody = await plain.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(["id", "deviceId", "status"], plainBody.EnumerateObject().Select(p => p.Name));

        // An unknown device is a 404, whether or not the caller would wait.
        Assert.Equal(HttpStatusCode.NotFound,
            (await gateway.Http.PostAsJsonAsync("/api/devices/never-seen/commands?waitSeconds=5", new { command = "PING" }, GatewayApp.Json)).StatusCode);
    }

    // A broker that forgot the gateway's session (no persistence, restarted) has no subscriptions for it either:
    // the gateway sees "session present: false" and subscribes again, or it would never hear a device again.
    [SkippableFact]
    public async Task GatewaySubscribesAgainWhenTheBrokerLostItsSession()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions { Persistence = false });
        await using var gateway = await StartGatewayAsync(broker.Url);

        await broker.StopAsync();
        await broker.StartAgainAsync();
        await Eventually.UntilAsync(() => gateway.Logs.Lines.Count(l => l.Contains("session present: False", StringComparison.Ordinal)) == 2,
            Timeout, "the gateway reconnects to a broker without its session");
        await gateway.WaitUntilReadyAsync();

        await using var device = await SignInAsync(broker, gateway, "after-amnesia");
        await device.PublishAsync(TopicRoots.Default.For("after-amnesia").Data, """{"temp":5}""");
        await gateway.WaitForDeviceAsync("after-amnesia", d => d.TelemetryCount == 1, "a reading sent after the broker lost the session is stored");
        var queued = await gateway.QueueCommandAsync("after-amnesia", new { command = "PING" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await device.PublishAsync(TopicRoots.Default.For("after-amnesia").CommandResponse, ArticleAnswer("after-amnesia", queued.Id, "PING", "PONG"));
        await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Completed);
    }

    // POST /api/commands/bulk with a device list: one command per distinct device, followed through its batch.
    [SkippableFact]
    public async Task BulkCommandForListedDevicesReachesEachOnceAndIsSummarised()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var a = await SignInAsync(broker, gateway, "bulk-a");
        await using var b = await SignInAsync(broker, gateway, "bulk-b");

        var post = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", deviceIds = new[] { "bulk-a", "bulk-b", "bulk-a" } });
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var accepted = await post.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json);
        Assert.Equal(2, accepted!.Count);
        Assert.Equal($"/api/commands/bulk/{accepted.BatchId}", post.Headers.Location!.AbsolutePath);

        foreach (var device in new[] { a, b })
        {
            var request = await device.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For(device.ClientId).CommandRequest, Timeout);
            var id = Guid.Parse(JsonDocument.Parse(request.Payload).RootElement.GetProperty("uuid").GetString()!);
            await device.PublishAsync(TopicRoots.Default.For(device.ClientId).CommandResponse, ArticleAnswer(device.ClientId, id, "PING", "PONG"));
        }

        var summary = await Eventually.UntilAsync(async () =>
            await gateway.Http.GetFromJsonAsync<BulkCommandSummary>($"/api/commands/bulk/{accepted.BatchId}", GatewayApp.Json) is { } s
            && s.ByStatus.GetValueOrDefault(CommandStatus.Completed) == 2 ? s : null, Timeout, "both answers are counted in the batch");
        Assert.Equal(2, summary.Total);
        Assert.Single(a.ReceivedMessages, m => m.Topic == TopicRoots.Default.For("bulk-a").CommandRequest);
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.GetAsync($"/api/commands/bulk/{Guid.NewGuid()}")).StatusCode);
    }

    // signedIn: true addresses the whole signed-in fleet or refuses: no device signed in queues nothing (200, no
    // batch to point at); more than Commands:MaxBulkDevices is a 400, never a silent cut to the first N.
    [SkippableFact]
    public async Task BulkCommandForSignedInDevicesIsAllOrNothing()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url, s => s["Commands:MaxBulkDevices"] = "2");

        var none = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", signedIn = true });
        Assert.Equal(HttpStatusCode.OK, none.StatusCode);
        Assert.Null(none.Headers.Location);
        Assert.Equal(0, (await none.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json))!.Count);

        await using var a = await SignInAsync(broker, gateway, "fleet-a");
        await using var b = await SignInAsync(broker, gateway, "fleet-b");
        await using var c = await SignInAsync(broker, gateway, "fleet-c");
        var tooMany = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", signedIn = true });
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Contains("Commands:MaxBulkDevices", await tooMany.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        foreach (var device in new[] { "fleet-a", "fleet-b", "fleet-c" })
        {
            Assert.Equal(0, (await gateway.Http.GetFromJsonAsync<DeviceView>($"/api/devices/{device}", GatewayApp.Json))!.PendingCommands);
        }

        await c.PublishAsync(TopicRoots.Default.For("fleet-c").Register, "SIGN_OUT", retain: true);
        await gateway.WaitForDeviceAsync("fleet-c", d => !d.SignedIn, "fleet-c signs out");

        var two = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", signedIn = true });
        Assert.Equal(HttpStatusCode.Accepted, two.StatusCode);
        Assert.Equal(2, (await two.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json))!.Count);
    }

    // Keyset paging and the filters of the list routes, as the README describes them: devices by id, a device's
    // commands newest first, signedIn and status filters, nextCursor until the last page.
    [SkippableFact]
    public async Task ListsPageWithCursorsAndFilter()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var a = await SignInAsync(broker, gateway, "page-a");
        await using var b = await SignInAsync(broker, gateway, "page-b");
        await using (var c = await SignInAsync(broker, gateway, "page-c"))
        {
            await c.PublishAsync(TopicRoots.Default.For("page-c").Register, "SIGN_OUT", retain: true);
            await gateway.WaitForDeviceAsync("page-c", d => !d.SignedIn, "page-c signs out");
        }

        var ids = new List<string>();
        string? cursor = null;
        do
        {
            var page = await gateway.Http.GetFromJsonAsync<Page<DeviceView>>($"/api/devices?limit=1{(cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor))}", GatewayApp.Json);
            ids.AddRange(page!.Items.Select(d => d.Id));
            Assert.True(page.Items.Count <= 1);
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        Assert.Equal(["page-a", "page-b", "page-c"], ids);
        Assert.Equal(["page-a", "page-b"], (await gateway.Http.GetFromJsonAsync<Page<DeviceView>>("/api/devices?signedIn=true", GatewayApp.Json))!.Items.Select(d => d.Id));
        Assert.Equal(["page-c"], (await gateway.Http.GetFromJsonAsync<Page<DeviceView>>("/api/devices?signedIn=false", GatewayApp.Json))!.Items.Select(d => d.Id));

        // Three commands to page-a: the first two answered, the newest left open.
        var queued = new List<Guid>();
        for (var i = 0; i < 3; i++)
        {
            queued.Add((await gateway.QueueCommandAsync("page-a", new { command = $"STEP_{i}" })).Id);
        }

        foreach (var id in queued.Take(2))
        {
            await a.WaitForMessageAsync(m => m.Payload.Contains(id.ToString()), Timeout);
            await a.PublishAsync(TopicRoots.Default.For("page-a").CommandResponse, ArticleAnswer("page-a", id, "STEP", "DONE"));
            await gateway.WaitForCommandAsync(id, CommandStatus.Completed);
        }

        var first = await gateway.Http.GetFromJsonAsync<Page<CommandView>>("/api/devices/page-a/commands?status=Completed&limit=1", GatewayApp.Json);
        Assert.Equal(queued[1], Assert.Single(first!.Items).Id);
        var second = await gateway.Http.GetFromJsonAsync<Page<CommandView>>(
            $"/api/devices/page-a/commands?status=Completed&limit=1&cursor={Uri.EscapeDataString(first.NextCursor!)}", GatewayApp.Json);
        Assert.Equal(queued[0], Assert.Single(second!.Items).Id);
        Assert.Null(second.NextCursor);
        var all = await gateway.Http.GetFromJsonAsync<Page<CommandView>>("/api/devices/page-a/commands", GatewayApp.Json);
        Assert.Equal(queued.AsEnumerable().Reverse(), all!.Items.Select(c => c.Id));
    }

    // The README's walkthrough on the default embedded broker: a device that went offline with a persistent
    // session (MQTT 3.1.1, as mosquitto_sub -c) gets the command the broker held for it when it comes back, and
    // a dropped connection signs it out through its Last Will.
    [SkippableFact]
    public async Task EmbeddedBrokerHoldsCommandsForAnOfflineDevice()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(provider: Provider);
        await using var gateway = started;
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, "walkthrough", protocol: MqttProtocolVersion.V311);
        await device.SubscribeAsync(TopicRoots.Default.For("walkthrough").CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For("walkthrough").Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("walkthrough", d => d.SignedIn, "the device signs in");
        await device.DisconnectAsync();

        var queued = await gateway.QueueCommandAsync("walkthrough", new { command = "PING" });
        await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Published);
        Assert.DoesNotContain(device.ReceivedMessages, m => m.Payload.Contains(queued.Id.ToString()));

        await device.ReconnectAsync();
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await device.PublishAsync(TopicRoots.Default.For("walkthrough").CommandResponse, ArticleAnswer("walkthrough", queued.Id, "PING", "PONG"));
        await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Completed);

        await device.DropConnectionAsync();
        await gateway.WaitForDeviceAsync("walkthrough", d => !d.SignedIn, "the Last Will signs the device out");
    }

    [SkippableFact]
    public async Task ErrorResultMarksCommandFailed()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await SignInAsync(broker, gateway, "strict");

        var queued = await gateway.QueueCommandAsync("strict", new { command = "SELF_DESTRUCT" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await device.PublishAsync(TopicRoots.Default.For("strict").CommandResponse, ArticleAnswer("strict", queued.Id, "SELF_DESTRUCT", "ERROR_UNKNOWN_COMMAND"));

        var failed = await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Failed);
        Assert.Equal("ERROR_UNKNOWN_COMMAND", failed.Result?.GetString());

        // A second answer to a finished command changes nothing and is logged.
        await device.PublishAsync(TopicRoots.Default.For("strict").CommandResponse, ArticleAnswer("strict", queued.Id, "SELF_DESTRUCT", "PONG"));
        await Eventually.UntilAsync(() => gateway.Logs.Contains($"command {queued.Id} ignored"), Timeout,
            "the late answer is logged");
        Assert.Equal(CommandStatus.Failed, (await gateway.GetCommandAsync(queued.Id)).Status);
    }

    [SkippableFact]
    public async Task PendingCommandCanBeCancelledAndIsNeverSent()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using (var device = await SignInAsync(broker, gateway, "cancel-me"))
        {
            await device.DisconnectAsync();
        }

        await broker.StopAsync();
        await Eventually.UntilAsync(async () => (await gateway.Http.GetAsync("/health/ready")).StatusCode == HttpStatusCode.ServiceUnavailable,
            Timeout, "the gateway sees the broker is down");
        var doomed = await gateway.QueueCommandAsync("cancel-me", new { command = "REBOOT" });
        var kept = await gateway.QueueCommandAsync("cancel-me", new { command = "PING" });

        var cancel = await gateway.Http.DeleteAsync($"/api/commands/{doomed.Id}");
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        var cancelled = await gateway.GetCommandAsync(doomed.Id);
        Assert.Equal(CommandStatus.Cancelled, cancelled.Status);
        Assert.NotNull(cancelled.CancelledAt);
        Assert.Equal(HttpStatusCode.Conflict, (await gateway.Http.DeleteAsync($"/api/commands/{doomed.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.DeleteAsync($"/api/commands/{Guid.NewGuid()}")).StatusCode);

        await broker.StartAgainAsync();
        await using var back = await ConnectDeviceAsync(broker, "cancel-me", cleanStart: false);
        await back.WaitForMessageAsync(m => m.Payload.Contains(kept.Id.ToString()), Timeout);
        Assert.DoesNotContain(back.ReceivedMessages, m => m.Payload.Contains(doomed.Id.ToString()));
        Assert.Equal(1, (await gateway.GetDeviceAsync("cancel-me"))!.PendingCommands);
    }

    // Cancelling a Published command cannot take it back from the broker: the device may still answer, and that
    // answer is logged and ignored.
    [SkippableFact]
    public async Task AnswerToACancelledPublishedCommandIsIgnored()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await SignInAsync(broker, gateway, "late-answer");

        var queued = await gateway.QueueCommandAsync("late-answer", new { command = "REBOOT" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Published);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.DeleteAsync($"/api/commands/{queued.Id}")).StatusCode);

        await device.PublishAsync(TopicRoots.Default.For("late-answer").CommandResponse, ArticleAnswer("late-answer", queued.Id, "REBOOT", "REBOOTING"));
        await Eventually.UntilAsync(() => gateway.Logs.Contains($"command {queued.Id} ignored: the command is Cancelled"), Timeout,
            "the late answer is logged as ignored");
        var command = await gateway.GetCommandAsync(queued.Id);
        Assert.Equal(CommandStatus.Cancelled, command.Status);
        Assert.Null(command.Result);
        Assert.Null(command.AnsweredAt);
    }

    [SkippableFact]
    public async Task UnansweredCommandExpiresAndTheBrokerDropsItToo()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using (var device = await SignInAsync(broker, gateway, "away"))
        {
            await device.DisconnectAsync();
        }

        var stale = await gateway.QueueCommandAsync("away", new { command = "PING", ttlSeconds = 1 });
        var published = await gateway.WaitForCommandAsync(stale.Id, CommandStatus.Published);
        var expired = await gateway.WaitForCommandAsync(stale.Id, CommandStatus.Expired);
        Assert.NotNull(expired.ExpiredAt);
        Assert.True(expired.ExpiredAt >= expired.ExpiresAt);
        Assert.Equal(0, (await gateway.GetDeviceAsync("away"))!.PendingCommands);

        // The broker received it no later than PublishedAt with an expiry of at most the TTL; Mosquitto counts
        // whole seconds, so one more second and it must not deliver it. A later command proves the queue was delivered.
        await Eventually.UntilAsync(() => DateTimeOffset.UtcNow > published.PublishedAt!.Value.AddSeconds(2.1), Timeout,
            "the broker-side expiry has passed");
        var fresh = await gateway.QueueCommandAsync("away", new { command = "PING" });
        await gateway.WaitForCommandAsync(fresh.Id, CommandStatus.Published);
        await using var back = await ConnectDeviceAsync(broker, "away", cleanStart: false);
        await back.WaitForMessageAsync(m => m.Payload.Contains(fresh.Id.ToString()), Timeout);
        Assert.DoesNotContain(back.ReceivedMessages, m => m.Payload.Contains(stale.Id.ToString()));
    }

    [SkippableFact]
    public async Task RestartedGatewayKeepsItsDataAndItsBrokerSession()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await StartGatewayAsync(broker.Url);
        await using var device = await SignInAsync(broker, gateway, "steady");
        await device.PublishAsync(TopicRoots.Default.For("steady").Data, """{"temp":1,"messageId":"before"}""");
        await gateway.WaitForDeviceAsync("steady", d => d.TelemetryCount == 1, "the first reading is stored");
        var queued = await gateway.QueueCommandAsync("steady", new { command = "PING" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);

        await gateway.StopAsync();
        // While the gateway is away its persistent session queues the device's reading and answer.
        await device.PublishAsync(TopicRoots.Default.For("steady").Data, """{"temp":2,"messageId":"during"}""");
        await device.PublishAsync(TopicRoots.Default.For("steady").CommandResponse, ArticleAnswer("steady", queued.Id, "PING", "PONG"));

        await gateway.RestartAsync();
        var after = await gateway.WaitForDeviceAsync("steady", d => d.TelemetryCount == 2, "the queued reading arrives after restart");
        Assert.True(after.SignedIn);
        Assert.Equal("PONG", (await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Completed)).Result?.GetString());
        Assert.True(gateway.Logs.Contains("session present: True"), "the gateway resumed its broker session");
    }

    private async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return await MosquittoBroker.StartAsync();
    }

    private static Task<TestMqttClient> ConnectDeviceAsync(MosquittoBroker broker, string deviceId, bool cleanStart = false,
        MqttProtocolVersion protocol = MqttProtocolVersion.V500) =>
        TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, deviceId, cleanStart, protocol);

    // The article's device start-up: persistent session (clean start off: Mosquitto 2.0 does not keep a
    // clean-start session across its own restart, whatever its expiry), subscribe, retained SIGN_IN.
    internal static async Task<TestMqttClient> SignInAsync(MosquittoBroker broker, GatewayApp gateway, string deviceId)
    {
        var device = await ConnectDeviceAsync(broker, deviceId, cleanStart: false);
        await device.SubscribeAsync(TopicRoots.Default.For(deviceId).CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For(deviceId).Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync(deviceId, d => d.SignedIn, $"{deviceId} signs in");
        return device;
    }

    internal static string ArticleAnswer(string deviceId, Guid commandId, string command, string result) =>
        Encoding.UTF8.GetString(CommandResponse.ToJson(deviceId, result, commandId.ToString(), command));
}
