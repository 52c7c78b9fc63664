using System.Text.RegularExpressions;
using DeviceSimulator.Devices;

namespace IotGateway.Tests.Simulator;

// The README's presence promises, as a subscriber on a real Mosquitto receives them: a retained SIGN_IN with the
// article's 300 s MQTT 5 expiry, a retained QoS 2 SIGN_OUT as Last Will, and on Ctrl+C or SIGTERM a retained
// SIGN_OUT of the device's own and exit code 0.
public sealed class SimulatorPresenceOnMosquittoTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [MosquittoFact]
    public async Task SignInIsRetainedAtQos2WithTheArticlesFiveMinuteExpiry()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var observer = await WatchPresenceAsync(broker);
        await using var running = new RunningDevice(new DeviceSettings { Broker = BrokerAddress.Parse(broker.Url), DeviceId = "expiring-device" });

        var signIn = await observer.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For("expiring-device").Register, Deadline);

        Assert.Equal("SIGN_IN", signIn.Payload);
        Assert.True(signIn.Retain, "SIGN_IN is published retained");
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, signIn.QualityOfService);
        // The broker forwards what is left of the expiry: a second may be gone already.
        Assert.InRange(signIn.MessageExpiryInterval, 290u, 300u);

        // The broker kept it, expiry still running, for whoever subscribes later (the gateway after a restart).
        var retained = await LateSubscriberReceivesAsync(broker, TopicRoots.Default.For("expiring-device").Register);
        Assert.Equal("SIGN_IN", retained.Payload);
        Assert.InRange(retained.MessageExpiryInterval, 1u, 300u);
    }

    [MosquittoTheory]
    [InlineData("5")]
    [InlineData("3.1.1")]
    public async Task LastWillIsARetainedSignOutAtQos2(string protocol)
    {
        await using var broker = await MosquittoBroker.StartAsync();
        await using var observer = await WatchPresenceAsync(broker);
        await using var simulator = SimulatorProcess.Start(
            "--broker", broker.Url, "--device-id", "doomed-device", "--protocol", protocol, "--always-online", "--interval", "60");
        await WaitForPresenceAsync(observer, simulator, "doomed-device", "SIGN_IN");

        simulator.Kill();

        // A killed device says nothing: this SIGN_OUT can only be the Last Will the broker publishes.
        var will = await WaitForPresenceAsync(observer, simulator, "doomed-device", "SIGN_OUT");
        Assert.True(will.Retain, "the Last Will is retained");
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, will.QualityOfService);
        await Eventually.UntilAsync(() => ConnectionEnds(broker, "doomed-device").Count == 1, Deadline, "mosquitto logs how the connection ended");
        Assert.Equal(["Client doomed-device closed its connection."], ConnectionEnds(broker, "doomed-device"));
        Assert.Equal("SIGN_OUT", (await LateSubscriberReceivesAsync(broker, TopicRoots.Default.For("doomed-device").Register)).Payload);
    }

    [SkippableTheory]
    [InlineData(SimulatorProcess.SigTerm, false)]
    [InlineData(SimulatorProcess.SigTerm, true)]
    [InlineData(SimulatorProcess.SigInt, false)]
    public async Task SignalPublishesARetainedSignOutOfItsOwnAndExitsZero(int signal, bool alwaysOnline)
    {
        Skip.If(OperatingSystem.IsWindows(), "signals are sent with kill(2)");
        Requires.Mosquitto();
        var id = $"stopped-device-{signal}-{(alwaysOnline ? "online" : "windowed")}";
        await using var broker = await MosquittoBroker.StartAsync();
        await using var observer = await WatchPresenceAsync(broker);
        // The next window is a minute away: a windowed device is offline when the signal comes and must reconnect to sign out.
        string[] mode = alwaysOnline ? ["--always-online"] : ["--online", "5"];
        await using var simulator = SimulatorProcess.Start(["--broker", broker.Url, "--device-id", id, "--interval", "60", .. mode]);
        await WaitForPresenceAsync(observer, simulator, id, "SIGN_IN");
        if (!alwaysOnline)
        {
            await Eventually.UntilAsync(() => ConnectionEnds(broker, id).Count == 1, Deadline, "the sign-in connection has closed");
        }

        simulator.Signal(signal);
        await simulator.WaitForExitAsync(Deadline);

        Assert.True(simulator.ExitCode == 0, $"exit code {simulator.ExitCode}; output:\n{simulator.Output}");
        var signOut = await WaitForPresenceAsync(observer, simulator, id, "SIGN_OUT");
        Assert.True(signOut.Retain, "SIGN_OUT is published retained");
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, signOut.QualityOfService);
        // The Last Will would look the same. Every connection ending with DISCONNECT proves the broker dropped it,
        // so the SIGN_OUT is the device's own. Only once all have ended: a dropped socket is logged a moment later.
        var connections = alwaysOnline ? 1 : 2;   // windowed: the sign-in connection, then one to sign out
        await Eventually.UntilAsync(() => ConnectionEnds(broker, id).Count >= connections, Deadline, $"mosquitto logs the end of all {connections} connections");
        Assert.Equal(connections, Regex.Count(broker.ReadLog(), $@" as {Regex.Escape(id)} \("));
        Assert.All(ConnectionEnds(broker, id), end => Assert.Equal($"Client {id} disconnected.", end));
        Assert.Single(observer.ReceivedMessages, m => m.Payload == "SIGN_OUT");
        Assert.Equal("SIGN_OUT", (await LateSubscriberReceivesAsync(broker, TopicRoots.Default.For(id).Register)).Payload);
    }

    // Subscribed before any device starts, with retain-as-published: a broker clears the retain flag on live copies
    // otherwise, and the flag is what these tests are about. QoS 2 so that the QoS received is the QoS published.
    private static async Task<TestMqttClient> WatchPresenceAsync(MosquittoBroker broker)
    {
        var observer = await TestMqttClient.ConnectAsync(broker, "presence-observer");
        var filter = new MqttTopicFilterBuilder()
            .WithTopic(TopicRoots.Default.For("+").Register)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce)
            .WithRetainAsPublished(true)
            .Build();
        var result = await observer.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithTopicFilter(filter).Build());
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS2, result.Items.Single().ResultCode);
        return observer;
    }

    private static async Task<ReceivedMessage> WaitForPresenceAsync(TestMqttClient observer, SimulatorProcess simulator, string deviceId, string presence)
    {
        try
        {
            return await observer.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For(deviceId).Register && m.Payload == presence, Deadline);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nThe simulator's output:\n{simulator.Output}", e);
        }
    }

    // What the broker holds: a retained message is replayed to a new subscription with the retain flag set.
    private static async Task<ReceivedMessage> LateSubscriberReceivesAsync(MosquittoBroker broker, string topic)
    {
        await using var late = await TestMqttClient.ConnectAsync(broker, "late-subscriber");
        await late.SubscribeAsync(topic);
        var retained = await late.WaitForMessageAsync(topic, Deadline);
        Assert.True(retained.Retain, "replayed as a retained message");
        return retained;
    }

    // Mosquitto's log line for each connection of the client that has ended: "Client X disconnected." after a
    // DISCONNECT packet (the will is dropped); anything else ("closed its connection.", a timeout, a socket error)
    // means the broker published the will.
    private static List<string> ConnectionEnds(MosquittoBroker broker, string clientId) =>
        Regex.Matches(broker.ReadLog(), $@"[Cc]lient {Regex.Escape(clientId)}[ ,][^\r\n]*").Select(m => m.Value).ToList();
}
