using MQTTnet.Formatter;

namespace IotGateway.Tests.InfrastructureTests;

public sealed class TestMqttClientTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    private static void WithSignOutWill(MqttClientOptionsBuilder o, string deviceId) => o
        .WithWillTopic($"register/{deviceId}")
        .WithWillPayload("SIGN_OUT")
        .WithWillRetain(true)
        .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);

    [MosquittoTheory]
    [InlineData(MqttProtocolVersion.V500)]
    [InlineData(MqttProtocolVersion.V311)]
    public async Task A_dropped_connection_makes_the_broker_publish_the_will(MqttProtocolVersion version)
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var observer = await TestMqttClient.ConnectAsync(broker, "observer");
        await observer.SubscribeAsync("register/+");
        await using var device = await TestMqttClient.ConnectAsync(broker, "dev-1", o =>
        {
            WithSignOutWill(o, "dev-1");
            o.WithProtocolVersion(version);
        });
        await device.PublishAsync("register/dev-1", "SIGN_IN", retain: true);
        await observer.WaitForMessageAsync(m => m.Topic == "register/dev-1" && m.Payload == "SIGN_IN", Wait);

        await device.DropConnectionAsync();

        var will = await observer.WaitForMessageAsync(m => m.Topic == "register/dev-1" && m.Payload == "SIGN_OUT", Wait);
        Assert.False(device.IsConnected);
        // Delivered live to an existing subscriber, so the retain flag is not set on this copy...
        Assert.False(will.Retain);
        // ...but the broker kept it: a new subscriber gets the retained SIGN_OUT.
        await using var late = await TestMqttClient.ConnectAsync(broker, "late");
        await late.SubscribeAsync("register/+");
        var retained = await late.WaitForMessageAsync("register/dev-1", Wait);
        Assert.Equal("SIGN_OUT", retained.Payload);
        Assert.True(retained.Retain);
        // Mosquitto saw a connection end without DISCONNECT.
        Assert.Contains("Client dev-1 closed its connection", broker.ReadLog(), StringComparison.Ordinal);
    }

    [MosquittoFact]
    public async Task Disconnect_with_will_message_publishes_the_will_under_MQTT5()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var observer = await TestMqttClient.ConnectAsync(broker, "observer");
        await observer.SubscribeAsync("register/+");
        await using var device = await TestMqttClient.ConnectAsync(broker, "dev-2", o => WithSignOutWill(o, "dev-2"));

        await device.DisconnectWithWillAsync();

        var will = await observer.WaitForMessageAsync("register/dev-2", Wait);
        Assert.Equal("SIGN_OUT", will.Payload);
    }

    [MosquittoFact]
    public async Task A_clean_disconnect_discards_the_will()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var observer = await TestMqttClient.ConnectAsync(broker, "observer");
        await observer.SubscribeAsync("register/+");
        await using var device = await TestMqttClient.ConnectAsync(broker, "dev-3", o => WithSignOutWill(o, "dev-3"));

        await device.DisconnectAsync();
        // Wait until the broker has processed the DISCONNECT, then prove nothing was published by
        // sending a marker through the same broker to the same observer.
        await Eventually.UntilAsync(() => broker.ReadLog().Contains("Client dev-3 disconnected", StringComparison.Ordinal),
            Wait, "mosquitto logged the clean disconnect of dev-3");
        await using (var marker = await TestMqttClient.ConnectAsync(broker, "marker"))
        {
            await marker.PublishAsync("register/marker", "MARK");
        }

        await observer.WaitForMessageAsync("register/marker", Wait);
        Assert.DoesNotContain(observer.ReceivedMessages, m => m.Topic == "register/dev-3");
    }

    [MosquittoFact]
    public async Task WaitForMessage_also_matches_messages_that_arrived_earlier()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var client = await TestMqttClient.ConnectAsync(broker, "self");
        await client.SubscribeAsync("echo/#");
        await client.PublishAsync("echo/1", "one");
        await client.PublishAsync("echo/2", "two");
        await Eventually.UntilAsync(() => client.ReceivedMessages.Count == 2, Wait, "both echoes arrived");

        var first = await client.WaitForMessageAsync(m => m.Payload == "one", TimeSpan.FromMilliseconds(1));
        Assert.Equal("echo/1", first.Topic);

        var both = await client.WaitForMessagesAsync(m => m.Topic.StartsWith("echo/", StringComparison.Ordinal), 2, Wait);
        Assert.Equal(["one", "two"], both.Select(m => m.Payload));
    }

    [MosquittoFact]
    public async Task WaitForMessage_timeout_lists_what_did_arrive()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var client = await TestMqttClient.ConnectAsync(broker, "self");
        await client.SubscribeAsync("echo/#");
        await client.PublishAsync("echo/1", "something else");
        await client.WaitForMessageAsync("echo/1", Wait);

        var error = await Assert.ThrowsAsync<TimeoutException>(
            () => client.WaitForMessageAsync("echo/never", TimeSpan.FromMilliseconds(200)));

        Assert.Contains("something else", error.Message, StringComparison.Ordinal);
        Assert.Contains("'self'", error.Message, StringComparison.Ordinal);
    }

    [MosquittoFact]
    public async Task Reconnect_after_a_drop_resumes_the_persistent_session()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var device = await TestMqttClient.ConnectAsync(broker, "dev-4",
            o => o.WithCleanStart(false).WithSessionExpiryInterval(600));
        await device.SubscribeAsync("cmd/dev-4", MqttQualityOfServiceLevel.ExactlyOnce);
        await device.DropConnectionAsync();
        await Eventually.UntilAsync(() => broker.ReadLog().Contains("Client dev-4 closed its connection", StringComparison.Ordinal),
            Wait, "mosquitto noticed that dev-4 went away");

        await using (var gateway = await TestMqttClient.ConnectAsync(broker, "gateway"))
        {
            await gateway.PublishAsync("cmd/dev-4", "PING");
        }

        var connack = await device.ReconnectAsync();

        Assert.True(connack.IsSessionPresent);
        var command = await device.WaitForMessageAsync("cmd/dev-4", Wait);
        Assert.Equal("PING", command.Payload);
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, command.QualityOfService);
    }

    [MosquittoFact]
    public async Task Received_messages_carry_MQTT5_properties()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var client = await TestMqttClient.ConnectAsync(broker, "props");
        await client.SubscribeAsync("props/#");

        await client.PublishAsync(new MqttApplicationMessageBuilder()
            .WithTopic("props/x")
            .WithPayload("{}")
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithMessageExpiryInterval(300)
            .WithContentType("application/json")
            .WithUserProperty("kind", "test"u8.ToArray().AsMemory())
            .Build());

        var message = await client.WaitForMessageAsync("props/x", Wait);
        Assert.Equal("application/json", message.ContentType);
        Assert.InRange(message.MessageExpiryInterval, 1u, 300u);
        Assert.Contains(new KeyValuePair<string, string>("kind", "test"), message.UserProperties);
    }

    [MosquittoFact]
    public async Task A_refused_MQTT311_connection_throws_too()
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions { Users = [("u", "p")] });

        var error = await Assert.ThrowsAsync<MqttConnectRefusedException>(() => TestMqttClient.ConnectAsync(broker, "old",
            o => o.WithProtocolVersion(MqttProtocolVersion.V311).WithCredentials("u", "wrong")));

        Assert.NotEqual(MqttClientConnectResultCode.Success, error.ResultCode);
    }
}
