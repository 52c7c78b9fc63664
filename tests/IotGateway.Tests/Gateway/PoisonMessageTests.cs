using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Gateway;

// The examples of issue 13: one hostile message used to stop ingest for every device. Each must now be rejected with
// a reason, acknowledged (a restart of the gateway's session redelivers nothing), and the next reading stored.
public sealed class PoisonMessageTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    // The answer parser threw on "\ud800" and the writer retried that batch for ever. Such a string is stored with
    // U+FFFD in place of the lone surrogate (as every string the gateway stores), and the command completes.
    [SkippableFact]
    public async Task AnAnswerWithALoneSurrogateCompletesItsCommandAndIngestCarriesOn()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using var device = await TestMqttClient.ConnectAsync(broker, "surrogate");
        await device.PublishAsync(TopicRoots.Default.For("surrogate").Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("surrogate", d => d.SignedIn, "the device signs in");
        var command = await gateway.QueueCommandAsync("surrogate", new { command = "PING" });

        await device.PublishAsync(TopicRoots.Default.For("surrogate").CommandResponse, $$"""{"uuid":"{{command.Id}}","commandResult":"\ud800","note":"x\udc00y"}""");
        await device.PublishAsync(TopicRoots.Default.For("surrogate").Data, """{"temp":1}""");

        await gateway.WaitForDeviceAsync("surrogate", d => d.TelemetryCount == 1, "the reading after the answer is stored", Timeout);
        var answered = await gateway.WaitForCommandAsync(command.Id, CommandStatus.Completed);
        Assert.Equal("\uFFFD", answered.Result?.GetString());
        Assert.Equal("x\uFFFDy", answered.Response!.Value.GetProperty("note").GetString());
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync("/health/ready")).StatusCode);

        await AssertNothingRedeliveredAsync(gateway, device, "surrogate", "Answer from surrogate", 0);
    }

    // A message id the classifier could not read threw in the MQTT handler: the message was never acknowledged and,
    // after Receive Maximum of them, the broker sent the gateway nothing more while readiness said 200.
    [SkippableFact]
    public async Task ReadingsWithUnreadableMessageIdsAreRejectedAndAcknowledged()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Mqtt:ReceiveMaximum"] = "2");
        await using var device = await TestMqttClient.ConnectAsync(broker, "unreadable");
        var topic = TopicRoots.Default.For("unreadable").Data;

        await device.PublishAsync(topic, """{"temp":1,"messageId":"\ud800"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await device.PublishAsync(topic, """{"temp":2,"uuid":"a\udc00b"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await device.PublishAsync(topic, """{"temp":3,"messageId":{"not":"an id"}}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await device.PublishAsync(topic, $$"""{"temp":4,"messageId":"{{new string('m', 201)}}"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await device.PublishAsync(topic, """{"temp":5,"messageId":"good"}""", MqttQualityOfServiceLevel.AtLeastOnce);

        await gateway.WaitForDeviceAsync("unreadable", d => d.TelemetryCount == 1, "the reading with a readable id is stored", Timeout);
        await Eventually.UntilAsync(() => RejectedLines(gateway, "Message rejected (bad-message-id)") == 4, Timeout, "each unreadable id is rejected with a reason");
        var metrics = await gateway.Http.GetStringAsync("/metrics");
        Assert.Equal(4, MetricsDocumentedTests.Value(metrics, "iot_gateway_messages_rejected_total{reason=\"bad-message-id\"}"));
        Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync("/health/ready")).StatusCode);

        await AssertNothingRedeliveredAsync(gateway, device, "unreadable", "Message rejected (bad-message-id)", 4);
    }

    // The bulk route took any payload its 8 MB body limit allowed, stored once per device: a 7 MB payload to 100
    // devices was 700 MB of rows. It must be refused before anything is stored, as the single route refuses it.
    [Fact]
    public async Task ABulkCommandWithAPayloadTheSingleRouteWouldRefuseIsRefusedBeforeAnythingIsStored()
    {
        const int Devices = 100;
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        await using (var scope = gateway.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
            db.Devices.AddRange(Enumerable.Range(0, Devices).Select(i => new Device { Id = $"bulk-{i}", FirstSeen = DateTimeOffset.UtcNow }));
            await db.SaveChangesAsync();
        }

        var payload = new string('x', 7 * 1024 * 1024);
        var body = JsonSerializer.Serialize(new { command = "CONFIGURE", payload = new { blob = payload }, deviceIds = Enumerable.Range(0, Devices).Select(i => $"bulk-{i}") });
        using var response = await gateway.Http.PostAsync("/api/commands/bulk", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge, $"refused, not {(int)response.StatusCode}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("payload", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await using (var scope = gateway.Services.CreateAsyncScope())
        {
            Assert.Equal(0, await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().Commands.CountAsync());
        }

        // The same payload on the single route: the same refusal.
        using var single = await gateway.Http.PostAsync("/api/devices/bulk-0/commands",
            new StringContent(JsonSerializer.Serialize(new { command = "CONFIGURE", payload = new { blob = payload } }), Encoding.UTF8, "application/json"));
        Assert.True(single.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.RequestEntityTooLarge, $"refused, not {(int)single.StatusCode}");
    }

    // Acknowledged means the broker forgets it: a restart of the gateway on the same session gets a reading published
    // after the restart, and none of the rejected messages again (unacknowledged ones are redelivered first).
    private static async Task AssertNothingRedeliveredAsync(GatewayApp gateway, TestMqttClient device, string deviceId, string rejection, int rejected)
    {
        var stored = (await gateway.GetDeviceAsync(deviceId))!.TelemetryCount;
        await gateway.RestartAsync();
        await device.PublishAsync(TopicRoots.Default.For(deviceId).Data, """{"temp":99,"messageId":"after-restart"}""");
        await gateway.WaitForDeviceAsync(deviceId, d => d.TelemetryCount == stored + 1, "the reading published after the restart is stored", Timeout);
        Assert.Equal(rejected, RejectedLines(gateway, rejection));
    }

    private static int RejectedLines(GatewayApp gateway, string rejection) =>
        gateway.Logs.Lines.Count(l => l.Contains(rejection, StringComparison.Ordinal));
}
