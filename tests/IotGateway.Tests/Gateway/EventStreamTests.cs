using System.Diagnostics;
using IotGateway.Commands;
using IotGateway.Events;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IotGateway.Tests.Gateway;

// GET /api/events end to end: devices publish through Mosquitto, the gateway stores, and the stream carries it.
public sealed class SqliteEventStreamTests : EventStreamTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;

    [SkippableFact]
    public async Task ClientThatDoesNotReadIsDroppedAndIngestDoesNotWaitForIt()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Events:ClientBuffer"] = "16");
        using var stalled = await gateway.Http.GetAsync("/api/events", HttpCompletionOption.ResponseHeadersRead); // and never read
        // Another client, following a quiet device: its buffer never fills, so it stays (the chatty device's batches would
        // fill a 16-event buffer even for a client that reads).
        await using var watcher = await EventStreamClient.OpenAsync(gateway.Http, "/api/events?deviceId=calm");
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "chatty");
        await using var calm = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "calm");

        const int Readings = 2000;
        var filler = new string('x', 200);
        for (var i = 1; i <= Readings; i++)
        {
            await device.PublishAsync(TopicRoots.Default.For("chatty").Data, $$"""{"n":{{i}},"filler":"{{filler}}","messageId":"c-{{i}}"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        await gateway.WaitForDeviceAsync("chatty", d => d.TelemetryCount == Readings, "every reading is stored although one client reads nothing");
        await Eventually.UntilAsync(() => gateway.Logs.Contains("dropped: it fell 16 events behind (Events:ClientBuffer)"), Timeout,
            "the stalled client is dropped, with the reason in the log");
        await calm.PublishAsync(TopicRoots.Default.For("calm").Data, """{"temp":20,"messageId":"calm-1"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await watcher.WaitForAsync(e => Key(e) == "calm-1", Timeout, "the other client still gets its events");
        Assert.Equal(1, gateway.Services.GetRequiredService<EventHub>().Count);

        // The stalled client's stream has been ended: reading it now comes to its end.
        await using var body = await stalled.Content.ReadAsStreamAsync();
        var buffer = new byte[64 * 1024];
        await Eventually.UntilAsync(async () =>
        {
            try
            {
                return await body.ReadAsync(buffer) == 0;
            }
            catch (IOException)
            {
                return true;
            }
        }, Timeout, "the dropped stream ends");
    }

    [SkippableFact]
    public async Task HeartbeatsKeepAQuietStreamOpen()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Events:HeartbeatSeconds"] = "0.2");
        await using var events = await EventStreamClient.OpenAsync(gateway.Http, "/api/events");
        await Eventually.UntilAsync(() => events.SawComment("heartbeat"), Timeout, "a heartbeat comment arrives on a quiet stream");
        Assert.Empty(events.Events);
    }

    // EventSource cannot send headers: a short-lived token from an authenticated POST opens the stream, and only that.
    [Fact]
    public async Task BrowserTokenOpensTheStreamAndNothingElse()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", s => s.SlowPeriodicTimers(), s => s.AddSingleton<TimeProvider>(time),
            waitUntilReady: false);
        using var reader = gateway.CreateClient(GatewayApp.ReaderKey);
        using var browser = gateway.CreateClient(apiKey: null);

        var issued = await reader.PostAsync("/api/events/tokens", null);
        Assert.Equal(HttpStatusCode.OK, issued.StatusCode);
        var token = (await issued.Content.ReadFromJsonAsync<EventStreamToken>(GatewayApp.Json))!;
        Assert.Equal(time.GetUtcNow().AddSeconds(60), token.ExpiresAt, TimeSpan.FromMilliseconds(1)); // times are shown to the millisecond
        Assert.Equal($"/api/events?access_token={token.Token}", token.Url);
        Assert.DoesNotContain(GatewayApp.ReaderKey, token.Url, StringComparison.Ordinal);

        await using (var stream = await EventStreamClient.OpenAsync(browser, token.Url))
        {
            Assert.Empty(stream.Events);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync($"/api/devices?access_token={token.Token}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.PostAsync($"/api/events/tokens?access_token={token.Token}", null)).StatusCode);
        var wrong = await browser.GetAsync("/api/events?access_token=not-a-token");
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal("Access token not valid", (await wrong.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString());
        var none = await browser.GetAsync("/api/events");
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Contains("X-API-Key", await none.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        time.Advance(TimeSpan.FromSeconds(61));
        var expired = await browser.GetAsync(token.Url, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Contains("expired", await expired.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The key itself, in the header, still works; an invalid device filter is refused.
        await using (await EventStreamClient.OpenAsync(reader, "/api/events?deviceId=any-device"))
        {
        }

        Assert.Equal(HttpStatusCode.BadRequest, (await reader.GetAsync("/api/events?deviceId=a%2Bb", HttpCompletionOption.ResponseHeadersRead)).StatusCode);
    }
}

public sealed class PostgresEventStreamTests : EventStreamTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class EventStreamTests
{
    protected abstract DatabaseProvider Provider { get; }

    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public async Task ReadingArrivesOnTheStreamWithinASecondAndTheDeviceFilterHolds()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, provider: Provider);
        await using var all = await EventStreamClient.OpenAsync(gateway.Http, "/api/events");
        await using var onlyFan = await EventStreamClient.OpenAsync(gateway.Http, "/api/events?deviceId=fan");
        await using var fan = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "fan");
        await using var pump = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "pump");

        await fan.PublishAsync(TopicRoots.Default.For("fan").Register, "SIGN_IN", retain: true);
        var presence = (await onlyFan.WaitForAsync(e => Type(e) == "presence", Timeout, "the sign-in is streamed")).Data;
        Assert.Equal("fan", presence.GetProperty("deviceId").GetString());
        Assert.True(presence.GetProperty("signedIn").GetBoolean());

        // The first reading warms up the path; the second is timed from the publish to its event.
        await fan.PublishAsync(TopicRoots.Default.For("fan").Data, """{"rpm":1000,"messageId":"warm-up"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await all.WaitForAsync(e => Key(e) == "warm-up", Timeout, "the warm-up reading is streamed");
        var published = Stopwatch.GetTimestamp();
        await fan.PublishAsync(TopicRoots.Default.For("fan").Data, """{"rpm":1200,"sensors":{"temp":41.5},"messageId":"timed"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        var (reading, arrived) = await all.WaitForAsync(e => Key(e) == "timed", Timeout, "the timed reading is streamed");
        var latency = Stopwatch.GetElapsedTime(published, arrived);
        Assert.True(latency < TimeSpan.FromSeconds(1), $"the reading took {latency.TotalMilliseconds:0} ms from publish to the event stream");
        Assert.Equal("reading", Type(reading));
        Assert.Equal("fan", reading.GetProperty("deviceId").GetString());
        Assert.Equal(TopicRoots.Default.For("fan").Data, reading.GetProperty("topic").GetString());
        Assert.Equal("Json", reading.GetProperty("format").GetString());
        Assert.Equal(41.5, reading.GetProperty("payload").GetProperty("sensors").GetProperty("temp").GetDouble());

        // Events reach each client in commit order: once the filtered stream has fan's next reading, pump's earlier one
        // would have come before it.
        await pump.PublishAsync(TopicRoots.Default.For("pump").Data, """{"bar":2.5,"messageId":"pump-1"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await all.WaitForAsync(e => Key(e) == "pump-1", Timeout, "the pump's reading is streamed to the unfiltered client");
        await fan.PublishAsync(TopicRoots.Default.For("fan").Data, """{"rpm":900,"messageId":"after-pump"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await onlyFan.WaitForAsync(e => Key(e) == "after-pump", Timeout, "fan's next reading reaches the filtered client");
        Assert.All(onlyFan.Events, e => Assert.Equal("fan", e.GetProperty("deviceId").GetString()));
    }

    [SkippableFact]
    public async Task CommandTransitionsAreStreamed()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, provider: Provider);
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, "relay");
        await device.SubscribeAsync(TopicRoots.Default.For("relay").CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For("relay").Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("relay", d => d.SignedIn, "the relay signs in");
        await using var events = await EventStreamClient.OpenAsync(gateway.Http, "/api/events?deviceId=relay");

        var answered = await gateway.QueueCommandAsync("relay", new { command = "PING" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(answered.Id.ToString(), StringComparison.Ordinal), Timeout);
        await WaitForStatusAsync(events, answered.Id, "Published");
        await device.PublishAsync(TopicRoots.Default.For("relay").CommandResponse, GatewayEndToEndTests.ArticleAnswer("relay", answered.Id, "PING", "PONG"));
        var completed = await WaitForStatusAsync(events, answered.Id, "Completed");
        Assert.Equal("PONG", completed.GetProperty("result").GetString());

        var cancelled = await gateway.QueueCommandAsync("relay", new { command = "REBOOT" });
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.DeleteAsync($"/api/commands/{cancelled.Id}")).StatusCode);
        await WaitForStatusAsync(events, cancelled.Id, "Cancelled");

        var expiring = await gateway.QueueCommandAsync("relay", new { command = "SLOW", ttlSeconds = 1 });
        await WaitForStatusAsync(events, expiring.Id, "Expired");

        // Pending first, for each: the order a client sees is the order of the commits.
        foreach (var id in new[] { answered.Id, cancelled.Id, expiring.Id })
        {
            Assert.Equal("Pending", events.Events.First(e => Type(e) == "command" && e.GetProperty("commandId").GetGuid() == id).GetProperty("status").GetString());
        }
    }

    private static async Task<JsonElement> WaitForStatusAsync(EventStreamClient events, Guid id, string status) =>
        (await events.WaitForAsync(e => Type(e) == "command" && e.GetProperty("commandId").GetGuid() == id && e.GetProperty("status").GetString() == status,
            Timeout, $"command {id} is streamed as {status}")).Data;

    protected static string? Type(JsonElement e) => e.GetProperty("type").GetString();

    protected static string? Key(JsonElement e) => e.TryGetProperty("messageKey", out var key) ? key.GetString() : null;

    protected async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return await MosquittoBroker.StartAsync();
    }
}
