using DeviceSimulator.Devices;
using MQTTnet.Formatter;
using MQTTnet.Server;

namespace IotGateway.Tests.Simulator;

public class SimulatedDeviceTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task DeviceSignsInWithARetainedMessageOnStart()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("sign-in-device"));

        var signIn = await gateway.WaitForPresenceAsync("sign-in-device", "SIGN_IN", Deadline);

        Assert.Equal(TopicRoots.Default.For("sign-in-device").Register, signIn.Topic);
        Assert.Equal("SIGN_IN", await broker.RetainedPayloadAsync(TopicRoots.Default.For("sign-in-device").Register));
        // The article's first connection only signs in, then leaves cleanly.
        await Until.TrueAsync(() => broker.DisconnectsOf("sign-in-device").Count > 0, Deadline, "the sign-in connection to close");
        Assert.Equal(MqttClientDisconnectType.Clean, broker.DisconnectsOf("sign-in-device")[0]);
    }

    [Fact]
    public async Task CommandSentWhileDeviceIsOfflineIsAnsweredAtItsNextWindow()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("offline-device", intervalSeconds: 1.5, onlineSeconds: 0.3));
        await gateway.WaitForPresenceAsync("offline-device", "SIGN_IN", Deadline);
        await Until.TrueAsync(async () => !await broker.IsConnectedAsync("offline-device"), Deadline, "the device to go offline after signing in");

        var uuid = await gateway.SendCommandAsync("offline-device", "PING");
        var answer = await gateway.WaitForAnswerAsync("offline-device", uuid, Deadline);

        Assert.Equal("offline-device", answer.GetProperty("deviceId").GetString());
        Assert.Equal("commandResp", answer.GetProperty("messageType").GetString());
        Assert.Equal("PONG", answer.GetProperty("commandResult").GetString());
        Assert.Equal(uuid, answer.GetProperty("uuid").GetString());
        Assert.Equal("PING", answer.GetProperty("command").GetString());
        // Counted once the broker has confirmed the answer (QoS 2), which may be just after the gateway saw it.
        await Until.TrueAsync(() => running.Device.CommandsAnswered == 1, Deadline, "the answer to be counted");
    }

    // An answer the broker refuses is sent again on the same connection: an always-online device has no next
    // connection at which an unacknowledged command would come back.
    [Fact]
    public async Task RefusedAnswerIsSentAgainOnTheSameConnection()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("stubborn-device") with { AlwaysOnline = true });
        await gateway.WaitForPresenceAsync("stubborn-device", "SIGN_IN", Deadline);
        broker.RefuseNext(TopicRoots.Default.For("stubborn-device").CommandResponse, 2);

        var uuid = await gateway.SendCommandAsync("stubborn-device", "PING");
        var answer = await gateway.WaitForAnswerAsync("stubborn-device", uuid, Deadline);

        Assert.Equal("PONG", answer.GetProperty("commandResult").GetString());
        Assert.Contains("(ATTEMPT 2 OF 3), TRYING AGAIN", running.Log, StringComparison.Ordinal);
        Assert.Equal(1, gateway.Count(m => m.Topic == TopicRoots.Default.For("stubborn-device").CommandResponse));
    }

    [Fact]
    public async Task UnknownCommandIsAnsweredWithErrorUnknownCommand()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("unknown-command-device") with { AlwaysOnline = true });
        await gateway.WaitForPresenceAsync("unknown-command-device", "SIGN_IN", Deadline);

        var uuid = await gateway.SendCommandAsync("unknown-command-device", "SELF_DESTRUCT");
        var answer = await gateway.WaitForAnswerAsync("unknown-command-device", uuid, Deadline);

        Assert.Equal("ERROR_UNKNOWN_COMMAND", answer.GetProperty("commandResult").GetString());
        Assert.Equal("SELF_DESTRUCT", answer.GetProperty("command").GetString());
    }

    [Theory]
    [InlineData(MqttProtocolVersion.V500)]
    [InlineData(MqttProtocolVersion.V311)]
    public async Task RebootDropsTheConnectionSoTheBrokerPublishesTheWillAndTheNextWindowSignsInAgain(MqttProtocolVersion protocol)
    {
        var id = $"reboot-device-{protocol}";
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        // An online window long enough that the REBOOT is carried out inside it even on a loaded machine: with a
        // 0.3 s window the window could end first (a clean disconnect) and the drop land in the next one.
        await using var running = new RunningDevice(broker.DeviceSettings(id, intervalSeconds: 1.5, onlineSeconds: 1.2, protocol));
        await gateway.WaitForPresenceAsync(id, "SIGN_IN", Deadline);

        var uuid = await gateway.SendCommandAsync(id, "REBOOT");
        var answer = await gateway.WaitForAnswerAsync(id, uuid, Deadline);
        Assert.Equal("REBOOTING", answer.GetProperty("commandResult").GetString());

        // Only the broker can have sent this SIGN_OUT: the device is still running. It left without DISCONNECT.
        await gateway.WaitForPresenceAsync(id, "SIGN_OUT", Deadline);
        // The broker may deliver the Will before it reports the disconnect.
        await Until.TrueAsync(() => broker.DisconnectsOf(id).Contains(MqttClientDisconnectType.NotClean), Deadline,
            $"the broker reports the dropped connection (disconnects so far: {string.Join(", ", broker.DisconnectsOf(id))})");

        await gateway.WaitForPresenceAsync(id, "SIGN_IN", Deadline, occurrence: 2);
        Assert.Equal("SIGN_IN", await broker.RetainedPayloadAsync(TopicRoots.Default.For(id).Register));

        // The device carries on and does not reboot again. REBOOT is acknowledged before the drop, but under 3.1.1 the
        // acknowledgement can be lost with the connection: the broker then delivers it again, and the device answers it
        // again from memory without running it.
        var readings = running.Device.ReadingsSent;
        await Until.TrueAsync(() => running.Device.ReadingsSent >= readings + 2, Deadline, "two more readings after the reboot");
        Assert.InRange(gateway.Count(m => m.Payload.Contains("REBOOTING", StringComparison.Ordinal)), 1, 2);
        Assert.Single(broker.DisconnectsOf(id), how => how == MqttClientDisconnectType.NotClean);
    }

    [Fact]
    public async Task CancellingRunPublishesARetainedSignOutAndLeavesCleanly()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("stopping-device"));
        await gateway.WaitForPresenceAsync("stopping-device", "SIGN_IN", Deadline);

        await running.StopAsync();

        var signOut = await gateway.WaitForPresenceAsync("stopping-device", "SIGN_OUT", Deadline);
        Assert.Equal(TopicRoots.Default.For("stopping-device").Register, signOut.Topic);
        Assert.Equal("SIGN_OUT", await broker.RetainedPayloadAsync(TopicRoots.Default.For("stopping-device").Register));
        Assert.DoesNotContain(MqttClientDisconnectType.NotClean, broker.DisconnectsOf("stopping-device"));
        Assert.False(running.Device.IsSignedIn);
    }

    [Fact]
    public async Task AlwaysOnlineDeviceSignsOutOverItsLiveConnectionWhenStopped()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("online-device", intervalSeconds: 0.3) with { AlwaysOnline = true });
        await gateway.WaitForPresenceAsync("online-device", "SIGN_IN", Deadline);
        await Until.TrueAsync(() => running.Device.ReadingsSent >= 2, Deadline, "two readings while staying connected");
        Assert.Empty(broker.DisconnectsOf("online-device"));

        await running.StopAsync();

        await gateway.WaitForPresenceAsync("online-device", "SIGN_OUT", Deadline);
        await Until.TrueAsync(() => broker.DisconnectsOf("online-device").Count > 0, Deadline, "the device to disconnect");
        Assert.Equal([MqttClientDisconnectType.Clean], broker.DisconnectsOf("online-device"));
    }

    [Fact]
    public async Task AlwaysOnlineDeviceReconnectsAndSignsInAgainWhenTheBrokerDropsIt()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("kicked-device", intervalSeconds: 5) with { AlwaysOnline = true });
        await gateway.WaitForPresenceAsync("kicked-device", "SIGN_IN", Deadline);

        await broker.KickAsync("kicked-device");

        await gateway.WaitForPresenceAsync("kicked-device", "SIGN_IN", Deadline, occurrence: 2);
        var uuid = await gateway.SendCommandAsync("kicked-device", "PING");
        Assert.Equal("PONG", (await gateway.WaitForAnswerAsync("kicked-device", uuid, Deadline)).GetProperty("commandResult").GetString());
    }

    [Fact]
    public async Task MalformedCommandsAreIgnoredAndTheDeviceKeepsAnswering()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("sturdy-device") with { AlwaysOnline = true });
        await gateway.WaitForPresenceAsync("sturdy-device", "SIGN_IN", Deadline);

        await gateway.SendRawAsync("sturdy-device", "this is not JSON");
        await gateway.SendRawAsync("sturdy-device", """{"command":"PING"}""");
        await gateway.SendRawAsync("sturdy-device", """["uuid"]""");
        var uuid = await gateway.SendCommandAsync("sturdy-device", "PING");

        var answer = await gateway.WaitForAnswerAsync("sturdy-device", uuid, Deadline);
        Assert.Equal("PONG", answer.GetProperty("commandResult").GetString());
        Assert.Equal(1, gateway.Count(m => m.Topic == TopicRoots.Default.For("sturdy-device").CommandResponse));
        Assert.Equal(3, running.Log.Split('\n').Count(line => line.Contains("IGNORING MALFORMED COMMAND", StringComparison.Ordinal)));
    }

    // What a gateway killed between publishing a command and recording it does: it publishes the same uuid again. The
    // device answers again with the result it remembered, without running the command a second time.
    [Fact]
    public async Task ACommandDeliveredAgainIsAnsweredAgainWithoutRunningTwice()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("once-device", intervalSeconds: 5) with { AlwaysOnline = true });
        await gateway.WaitForPresenceAsync("once-device", "SIGN_IN", Deadline);

        var uuid = Guid.NewGuid().ToString();
        var request = JsonSerializer.Serialize(new { uuid, command = "SET_INTERVAL", payload = new { seconds = 30 } });
        await gateway.SendRawAsync("once-device", request);
        await gateway.WaitForAnswerAsync("once-device", uuid, Deadline);
        running.Device.ChangeInterval(TimeSpan.FromSeconds(7)); // a change a second run would undo

        await gateway.SendRawAsync("once-device", request);
        var again = await gateway.WaitForAsync(m => m.Topic == TopicRoots.Default.For("once-device").CommandResponse && m.Payload.Contains(uuid, StringComparison.Ordinal),
            Deadline, "the second answer", occurrence: 2);
        Assert.Equal("OK", JsonDocument.Parse(again.Payload).RootElement.GetProperty("commandResult").GetString());
        Assert.Equal(TimeSpan.FromSeconds(7), running.Device.Interval);
        Assert.Contains("ALREADY EXECUTED: ANSWERING AGAIN WITHOUT RUNNING IT", running.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SetIntervalChangesTheIntervalAndGetConfigReportsItWithoutThePassword()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        var settings = broker.DeviceSettings("configurable-device", intervalSeconds: 5) with
        {
            // Credentials in the URL too: the explicit ones below are the ones used, and neither kind is reported.
            Broker = BrokerAddress.Parse($"mqtt://url-user:url-password@127.0.0.1:{broker.Port}"),
            AlwaysOnline = true,
            Username = "device-user",
            Password = "s3cret-password",
        };
        await using var running = new RunningDevice(settings);
        await gateway.WaitForPresenceAsync("configurable-device", "SIGN_IN", Deadline);

        var badUuid = await gateway.SendCommandAsync("configurable-device", "SET_INTERVAL", new { seconds = -3 });
        Assert.Equal("ERROR_INVALID_ARGUMENT", (await gateway.WaitForAnswerAsync("configurable-device", badUuid, Deadline)).GetProperty("commandResult").GetString());
        var missingUuid = await gateway.SendCommandAsync("configurable-device", "SET_INTERVAL");
        Assert.Equal("ERROR_INVALID_ARGUMENT", (await gateway.WaitForAnswerAsync("configurable-device", missingUuid, Deadline)).GetProperty("commandResult").GetString());

        var setUuid = await gateway.SendCommandAsync("configurable-device", "SET_INTERVAL", new { seconds = 0.25 });
        var set = await gateway.WaitForAnswerAsync("configurable-device", setUuid, Deadline);
        Assert.Equal("OK", set.GetProperty("commandResult").GetString());
        Assert.Equal(0.25, set.GetProperty("payload").GetProperty("seconds").GetDouble());
        Assert.Equal(TimeSpan.FromSeconds(0.25), running.Device.Interval);
        // The new interval applies at once: readings now come four times a second instead of every five seconds.
        await gateway.WaitForAsync(m => m.Topic == TopicRoots.Default.For("configurable-device").Data, Deadline, "readings at the new interval", occurrence: 3);

        var getUuid = await gateway.SendCommandAsync("configurable-device", "GET_CONFIG");
        var config = (await gateway.WaitForAnswerAsync("configurable-device", getUuid, Deadline)).GetProperty("commandResult");
        Assert.Equal(JsonValueKind.Object, config.ValueKind);
        Assert.Equal(0.25, config.GetProperty("intervalSeconds").GetDouble());
        Assert.Equal("5", config.GetProperty("protocol").GetString());
        Assert.Equal(TopicRoots.Default.For("configurable-device").CommandRequest, config.GetProperty("topics").GetProperty("commandRequest").GetString());
        Assert.DoesNotContain("s3cret-password", config.GetRawText(), StringComparison.Ordinal);
        Assert.Equal($"mqtt://127.0.0.1:{broker.Port}", config.GetProperty("broker").GetString());
    }

    [Fact]
    public async Task TelemetryHasTheArticleShapeWithUniqueIdsAndDriftingValues()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        await using var running = new RunningDevice(broker.DeviceSettings("sensor-device", intervalSeconds: 0.2) with { AlwaysOnline = true });

        await gateway.WaitForAsync(m => m.Topic == TopicRoots.Default.For("sensor-device").Data, Deadline, "five readings", occurrence: 5);

        var readings = gateway.Seen.Where(m => m.Topic == TopicRoots.Default.For("sensor-device").Data).Select(m => JsonDocument.Parse(m.Payload).RootElement).ToList();
        foreach (var reading in readings)
        {
            Assert.Equal("sensor-device", reading.GetProperty("deviceId").GetString());
            Assert.Equal("DATA", reading.GetProperty("messageType").GetString());
            Assert.InRange(reading.GetProperty("temp").GetDouble(), -10, 45);
            Assert.InRange(reading.GetProperty("lat").GetDouble(), 47.9, 48.1);
            Assert.InRange(reading.GetProperty("lng").GetDouble(), -88.7, -88.5);
            Assert.True(DateTimeOffset.TryParse(reading.GetProperty("ts").GetString(), out _));
        }

        Assert.Equal(readings.Count, readings.Select(r => r.GetProperty("messageId").GetString()).Distinct().Count());
        Assert.True(readings.Select(r => (r.GetProperty("lat").GetDouble(), r.GetProperty("lng").GetDouble())).Distinct().Count() > 1, "the position drifts");
    }
}
