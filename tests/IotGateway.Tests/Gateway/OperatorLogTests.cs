
namespace IotGateway.Tests.Gateway;

// Logs an operator can live with, at the levels the gateway ships with (Information by default): the expected wait
// for readiness is one line, not an error per probe; a device's sign-in and a command's publish and answer are Debug.
public sealed class OperatorLogTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task WaitingForReadinessIsOneLineAndNoError()
    {
        // No broker there: the gateway stays not ready while a probe polls.
        await using var gateway = await GatewayApp.StartAsync($"mqtt://127.0.0.1:{FreePort.OnLoopback()}", waitUntilReady: false);
        for (var poll = 0; poll < 8; poll++)
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await gateway.Http.GetAsync("/health/ready")).StatusCode);
        }

        Assert.DoesNotContain(gateway.Logs.Lines, l => l.StartsWith("Error ", StringComparison.Ordinal) || l.StartsWith("Critical ", StringComparison.Ordinal));
        Assert.Single(gateway.Logs.Lines, l => l.Contains("Not ready yet: broker: ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReadinessChangesAreLoggedOnceEach()
    {
        var (gateway, _) = await GatewayApp.StartEmbeddedAsync();
        await using var app = gateway;
        for (var poll = 0; poll < 5; poll++)
        {
            Assert.Equal(HttpStatusCode.OK, (await gateway.Http.GetAsync("/health/ready")).StatusCode);
        }

        Assert.Single(gateway.Logs.Lines, l => l == "Information IotGateway.Health.ReadinessLog: Ready");
    }

    [Fact]
    public async Task SignInsAndCommandsOfAFleetAreDebugLines()
    {
        const int devices = 20;
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync();
        await using var app = gateway;
        var before = gateway.Logs.Lines.Count;

        var fleet = new List<TestMqttClient>();
        try
        {
            for (var i = 0; i < devices; i++)
            {
                var id = $"quiet-{i:00}";
                var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, id);
                fleet.Add(device);
                await device.SubscribeAsync(TopicRoots.Default.For(id).CommandRequest);
                await device.PublishAsync(TopicRoots.Default.For(id).Register, "SIGN_IN", retain: true);
            }

            var ids = new List<Guid>();
            for (var i = 0; i < devices; i++)
            {
                var id = $"quiet-{i:00}";
                await gateway.WaitForDeviceAsync(id, d => d.SignedIn, $"{id} signs in");
                var queued = await gateway.QueueCommandAsync(id, new { command = "PING" });
                await fleet[i].WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString(), StringComparison.Ordinal), Timeout);
                await fleet[i].PublishAsync(TopicRoots.Default.For(id).CommandResponse, GatewayEndToEndTests.ArticleAnswer(id, queued.Id, "PING", "PONG"));
                ids.Add(queued.Id);
            }

            foreach (var id in ids)
            {
                await gateway.WaitForCommandAsync(id, CommandStatus.Completed);
            }
        }
        finally
        {
            foreach (var device in fleet)
            {
                await device.DisposeAsync();
            }
        }

        // 20 sign-ins and 20 commands published and answered: nothing of it above Debug.
        var lines = gateway.Logs.Lines.Skip(before).Where(l => !l.StartsWith("Debug ", StringComparison.Ordinal) && !l.StartsWith("Trace ", StringComparison.Ordinal)).ToList();
        Assert.True(lines.Count < devices, $"{lines.Count} lines above Debug for {devices} devices:{Environment.NewLine}{string.Join(Environment.NewLine, lines)}");
        Assert.DoesNotContain(lines, l => l.Contains("quiet-", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task TheReadinessBodyWritesPlusAsPlus()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        // A user name with a '+' (Mosquitto lets anyone in): the broker check's description carries it.
        await using var gateway = await GatewayApp.StartAsync($"mqtt://ops+gateway:secret@{broker.Host}:{broker.Port}");

        var body = await (await gateway.Http.GetAsync("/health/ready")).Content.ReadAsStringAsync();
        Assert.Contains("mqtt://ops+gateway:***@", body, StringComparison.Ordinal);
        Assert.DoesNotContain("\\u002B", body, StringComparison.Ordinal);
    }
}
