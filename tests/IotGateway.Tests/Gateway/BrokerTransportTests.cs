using System.Globalization;

namespace IotGateway.Tests.Gateway;

// The gateway's own connection in the forms the README promises: over WebSockets, and speaking MQTT 3.1.1
// to a broker that only does that. A whole command round trip each, against a real Mosquitto.
public sealed class BrokerTransportTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public async Task GatewayConnectsOverWebSockets()
    {
        Requires.Mosquitto();
        var webSocketPort = FreePort.OnLoopback();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            ExtraConfig = string.Create(CultureInfo.InvariantCulture, $"listener {webSocketPort} 127.0.0.1\nprotocol websockets\n"),
        });
        await using var gateway = await GatewayApp.StartAsync($"ws://127.0.0.1:{webSocketPort}/mqtt");
        await RoundTripAsync(broker, gateway, "over-ws");
        Assert.True(gateway.Logs.Contains($"Connected to broker ws://127.0.0.1:{webSocketPort}/mqtt"));
    }

    [SkippableFact]
    public async Task GatewaySpeaksMqtt311WhenConfigured()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Mqtt:ProtocolVersion"] = "3.1.1");
        await RoundTripAsync(broker, gateway, "old-broker");
        Assert.True(gateway.Logs.Contains("(MQTT 3.1.1, persistent session)"));
        // Mosquitto logs MQTT 3.1.1 as p2 (and 5 as p5); c0 = clean session off.
        Assert.Contains($"as {gateway.ClientId} (p2, c0,", broker.ReadLog(), StringComparison.Ordinal);
    }

    // A clean stop is a clean MQTT disconnect: the DISCONNECT packet gets out before the socket closes, through
    // BufferedMqttChannel's queue and past the test host's second stop (which once disposed the client under it).
    // Mosquitto logs "disconnected." only for that packet, "closed its connection." otherwise.
    [SkippableFact]
    public async Task GatewayStopsWithADisconnectPacket()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await RoundTripAsync(broker, gateway, "before-stop");
        await gateway.StopAsync();

        var ending = await Eventually.UntilAsync(
            () => Task.FromResult(broker.ReadLog().Split('\n').LastOrDefault(l => l.Contains($"Client {gateway.ClientId} ", StringComparison.Ordinal)
                && (l.Contains(" disconnected", StringComparison.Ordinal) || l.Contains(" closed its connection", StringComparison.Ordinal)))),
            Timeout, "Mosquitto logs the end of the gateway's connection");
        Assert.EndsWith($"Client {gateway.ClientId} disconnected.", ending.TrimEnd(), StringComparison.Ordinal);
    }

    // Mqtt:SessionExpirySeconds is what the gateway asks the broker for: Mosquitto drops the session that long after
    // the gateway has gone (and logs it), and the next start finds none. With the default (7 days) it is still there.
    [SkippableFact]
    public async Task TheBrokerKeepsTheGatewaySessionForTheConfiguredTime()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var kept = await GatewayApp.StartAsync(broker.Url);
        await kept.RestartAsync();
        Assert.True(kept.Logs.Contains("session present: True"));

        await using var expiring = await GatewayApp.StartAsync(broker.Url, s => s["Mqtt:SessionExpirySeconds"] = "1");
        await expiring.StopAsync();
        await Eventually.UntilAsync(() => broker.ReadLog().Contains($"Expiring client {expiring.ClientId} due to timeout.", StringComparison.Ordinal),
            Timeout, "Mosquitto expires the gateway's session a second after it left");
        await expiring.RestartAsync();
        Assert.False(expiring.Logs.Contains("session present: True"));
        Assert.Equal(2, expiring.Logs.Lines.Count(l => l.Contains("session present: False", StringComparison.Ordinal)));
    }

    // Presence, a reading and a command answered: the gateway both receives and publishes over the connection.
    internal static async Task RoundTripAsync(MosquittoBroker broker, GatewayApp gateway, string deviceId)
    {
        await using var device = await TestMqttClient.ConnectAsync(broker, deviceId, o => o.WithCleanStart(false).WithSessionExpiryInterval(600));
        await device.SubscribeAsync(TopicRoots.Default.For(deviceId).CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For(deviceId).Register, "SIGN_IN", retain: true);
        await device.PublishAsync(TopicRoots.Default.For(deviceId).Data, """{"temp":20}""");
        await gateway.WaitForDeviceAsync(deviceId, d => d.SignedIn && d.TelemetryCount == 1, "presence and a reading arrive", Timeout);

        var queued = await gateway.QueueCommandAsync(deviceId, new { command = "PING" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString(), StringComparison.Ordinal), Timeout);
        await device.PublishAsync(TopicRoots.Default.For(deviceId).CommandResponse, GatewayEndToEndTests.ArticleAnswer(deviceId, queued.Id, "PING", "PONG"));
        Assert.Equal("PONG", (await gateway.WaitForCommandAsync(queued.Id, CommandStatus.Completed, Timeout)).Result?.GetString());
    }
}
