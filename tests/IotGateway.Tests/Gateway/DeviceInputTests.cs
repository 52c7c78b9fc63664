using System.Text;
using IotGateway.Telemetry;

namespace IotGateway.Tests.Gateway;

// Devices send whatever they send. Each malformed or hostile message gets a logged reason, and the
// pipeline carries on storing the next one.
public sealed class DeviceInputTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public async Task MalformedPayloadsAreStoredSafelyOrRejectedWithAReason()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Ingest:MaxPayloadBytes"] = "1024");
        await using var device = await TestMqttClient.ConnectAsync(broker, "messy");
        var topic = TopicRoots.Default.For("messy").Data;

        await device.PublishAsync(topic, "temperature is 21 degrees");
        await device.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload([0xff, 0xfe, 0x00, 0x80, 0x41]).Build());
        await device.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(Array.Empty<byte>()).Build());
        await device.PublishAsync(topic, $$"""{"blob":"{{new string('x', 5000)}}"}""");
        await device.PublishAsync(topic, """{"temp":21,"after":"the garbage"}""");

        await gateway.WaitForDeviceAsync("messy", d => d.TelemetryCount == 3, "text, binary and the final JSON are stored");
        var page = await gateway.Http.GetFromJsonAsync<Page<ReadingView>>("/api/devices/messy/telemetry", GatewayApp.Json);
        var readings = page!.Items.Reverse().ToList();
        Assert.Equal(PayloadFormat.Text, readings[0].Format);
        Assert.Equal("temperature is 21 degrees", readings[0].Payload.GetString());
        Assert.Equal(PayloadFormat.Binary, readings[1].Format);
        Assert.Equal([0xff, 0xfe, 0x00, 0x80, 0x41], Convert.FromBase64String(readings[1].Payload.GetString()!));
        Assert.Equal(PayloadFormat.Json, readings[2].Format);
        Assert.Equal("the garbage", readings[2].Payload.GetProperty("after").GetString());

        // Rejections are logged after their batch commits, which may be just after the readings above are visible.
        await Eventually.UntilAsync(() => gateway.Logs.Contains("Message rejected (oversized)"), Timeout, "the rejections are logged");
        Assert.True(gateway.Logs.Contains("Message rejected (empty): empty telemetry payload from 'messy'"));
        Assert.True(gateway.Logs.Contains("Message rejected (oversized): payload of 5011 bytes from 'messy' exceeds Ingest:MaxPayloadBytes (1024)"));
    }

    [SkippableFact]
    public async Task RedeliveredReadingsWithAnIdAreStoredOnce()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using var device = await TestMqttClient.ConnectAsync(broker, "repeater");
        var topic = TopicRoots.Default.For("repeater").Data;

        for (var i = 0; i < 3; i++)
        {
            await device.PublishAsync(topic, """{"temp":1,"messageId":"same-reading"}""");
            await device.PublishAsync(topic, """{"temp":2,"uuid":"3f1c0f7e-1111-4a4a-9999-000000000001"}""");
            await device.PublishAsync(new MqttApplicationMessageBuilder()
                .WithTopic(topic)
                .WithPayload("""{"temp":3}""")
                .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                .WithUserProperty("message-id", Encoding.UTF8.GetBytes("from-user-property").AsMemory())
                .Build());
        }

        // A reading without an id is stored every time: there is nothing to tell a redelivery from a new reading.
        await device.PublishAsync(topic, """{"temp":4}""");
        await device.PublishAsync(topic, """{"temp":4}""");

        await gateway.WaitForDeviceAsync("repeater", d => d.TelemetryCount == 5, "three identified readings once each, two anonymous ones");
        var page = await gateway.Http.GetFromJsonAsync<Page<ReadingView>>("/api/devices/repeater/telemetry", GatewayApp.Json);
        Assert.Equal(5, page!.Items.Count);
        Assert.Equal(["same-reading", "3f1c0f7e-1111-4a4a-9999-000000000001", "from-user-property"],
            page.Items.Where(r => r.MessageKey is not null).Select(r => r.MessageKey).Reverse());
    }

    [SkippableFact]
    public async Task StrayTopicsAndStrayAnswersChangeNothing()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using var device = await TestMqttClient.ConnectAsync(broker, "stray");
        var topics = TopicRoots.Default.For("stray");

        await device.PublishAsync($"{topics.Data}/extra/levels", """{"temp":1}""");
        await device.PublishAsync(TopicRoots.Default.For(new string('x', 129)).Data, """{"temp":1}""");
        await device.PublishAsync(topics.Register, "MAYBE_LATER");
        await device.PublishAsync(topics.CommandResponse, GatewayEndToEndTests.ArticleAnswer("stray", Guid.NewGuid(), "PING", "PONG"));
        await device.PublishAsync(topics.CommandResponse, """{"commandResult":"PONG"}""");
        await device.PublishAsync(topics.CommandResponse, "PONG");
        await device.PublishAsync(topics.Data, """{"temp":2}""");

        var stray = await gateway.WaitForDeviceAsync("stray", d => d.TelemetryCount == 1, "only the well-formed reading is stored");
        Assert.False(stray.SignedIn);
        // Rejections are logged after their batch commits, which may be just after the reading above is visible.
        await Eventually.UntilAsync(() => gateway.Logs.Contains("unknown to the gateway") && gateway.Logs.Contains("the answer is not valid JSON"),
            Timeout, "the answer to an unknown command and the malformed answers are logged");
        Assert.True(gateway.Logs.Contains("register payload from 'stray' is 'MAYBE_LATER', not SIGN_IN or SIGN_OUT"));
        Assert.True(gateway.Logs.Contains("command response from 'stray' ignored: the answer has no \"uuid\" naming a command"));
        Assert.True(gateway.Logs.Contains("command response from 'stray' ignored: the answer is not valid JSON"));
        Assert.Null(await gateway.GetDeviceAsync("extra"));
        // The subscription matches one level only, so the extra levels never reach the gateway; an id over 128
        // characters does, and is refused.
        await Eventually.UntilAsync(() => gateway.Logs.Contains("Message rejected (bad-device-id)"), Timeout,
            "a reading under an over-long device id is rejected");
        Assert.True(gateway.Logs.Contains("A device id must be at most 128 characters."));
        Assert.Single((await gateway.Http.GetFromJsonAsync<Page<Devices.DeviceView>>("/api/devices", GatewayApp.Json))!.Items);
    }

    // Mosquitto refuses topics with control characters; MQTTnet's embedded broker (the default) passes them on. A
    // device id with a line break must be refused like any invalid id, and must not be able to forge a log line.
    [Fact]
    public async Task ControlCharactersInADeviceIdAreRefusedAndEscapedInTheLog()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync();
        await using var gateway = started;
        await using var device = await TestMqttClient.ConnectAsync("127.0.0.1", port, "forger");
        await device.PublishAsync(TopicRoots.Default.For("forger\nfail: IotGateway[0] all is well").Data, """{"temp":1}""");
        await device.PublishAsync(TopicRoots.Default.For("forger\u0007").Register, "SIGN_IN");
        await device.PublishAsync(TopicRoots.Default.For("forger").Data, """{"temp":2}""");

        await gateway.WaitForDeviceAsync("forger", d => d.TelemetryCount == 1, "the reading under the valid id is stored");
        await Eventually.UntilAsync(() => gateway.Logs.Contains("Message rejected (bad-device-id): topic 'iot/register/forger\\u0007': "), Timeout,
            "both refusals are logged");
        Assert.True(gateway.Logs.Contains("Message rejected (bad-device-id): topic 'iot/data/forger\\u000Afail: IotGateway[0] all is well': "));
        Assert.DoesNotContain(gateway.Logs.Lines, line => line.Contains('\n', StringComparison.Ordinal) && line.Contains("all is well", StringComparison.Ordinal));
        Assert.Single((await gateway.Http.GetFromJsonAsync<Page<Devices.DeviceView>>("/api/devices", GatewayApp.Json))!.Items);
    }

    // What the README says of Mosquitto: it refuses such a topic itself, dropping the device's connection, so
    // nothing of it reaches the gateway.
    [SkippableFact]
    public async Task MosquittoDropsADeviceThatPublishesUnderAControlCharacter()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using (var forger = await TestMqttClient.ConnectAsync(broker, "forger"))
        {
            await Record.ExceptionAsync(() => forger.PublishAsync(TopicRoots.Default.For("forger\nx").Data, """{"temp":1}""")); // no PUBREC comes
            await Eventually.UntilAsync(() => broker.ReadLog().Contains("Client forger disconnected due to malformed packet.", StringComparison.Ordinal),
                Timeout, "Mosquitto drops the connection");
        }

        // A reading published after it arrives; the refused one never did.
        await using var witness = await TestMqttClient.ConnectAsync(broker, "witness");
        await witness.PublishAsync(TopicRoots.Default.For("witness").Data, """{"temp":2}""");
        await gateway.WaitForDeviceAsync("witness", d => d.TelemetryCount == 1, "the witness's reading is stored");
        Assert.False(gateway.Logs.Contains("unknown-topic"));
        Assert.Single((await gateway.Http.GetFromJsonAsync<Page<Devices.DeviceView>>("/api/devices", GatewayApp.Json))!.Items);
    }

    [SkippableFact]
    public async Task FloodFromOneDeviceDoesNotStarveOthers()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using var flooder = await TestMqttClient.ConnectAsync(broker, "flooder");
        await using var quiet = await TestMqttClient.ConnectAsync(broker, "quiet");

        const int flood = 5000;
        var flooding = Task.WhenAll(Enumerable.Range(0, flood).Select(i => flooder.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic(TopicRoots.Default.For("flooder").Data).WithPayload($$"""{"n":{{i}},"messageId":"f{{i}}"}""")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build())));
        await quiet.PublishAsync(TopicRoots.Default.For("quiet").Data, """{"temp":20,"messageId":"q1"}""");

        await gateway.WaitForDeviceAsync("quiet", d => d.TelemetryCount == 1, "the quiet device's reading is stored during the flood");
        await flooding;
        await gateway.WaitForDeviceAsync("flooder", d => d.TelemetryCount == flood, "every flooded reading is stored too", TimeSpan.FromSeconds(60));
    }

    private static async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        return await MosquittoBroker.StartAsync();
    }
}
