using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IotGateway.Tests.Gateway;

// The article's server pings every signed-in device every 10 s. Time is moved by hand, not waited for.
public sealed class HeartbeatTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public async Task HeartbeatPingsSignedInDevicesButNeverPilesUpForOneThatDoesNotAnswer()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s =>
        {
            s["Commands:Heartbeat:Enabled"] = "true";
            s["Commands:Heartbeat:IntervalSeconds"] = "10";
            s["Logging:LogLevel:IotGateway.Commands.Heartbeat"] = "Debug";
        }, services => services.AddSingleton<TimeProvider>(time));

        await using var device = await TestMqttClient.ConnectAsync(broker, "beating", o => o.WithCleanStart(false).WithSessionExpiryInterval(600));
        await device.SubscribeAsync(TopicRoots.Default.For("beating").CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For("beating").Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("beating", d => d.SignedIn, "the device signs in");
        await using var silent = await TestMqttClient.ConnectAsync(broker, "silent");
        await silent.PublishAsync(TopicRoots.Default.For("silent").Register, "SIGN_OUT", retain: true);
        await gateway.WaitForDeviceAsync("silent", d => !d.SignedIn, "a signed-out device is known too");

        await BeatAsync(time, gateway, "Heartbeat: 1 commands queued, 0 signed-in devices skipped");
        var first = await device.WaitForMessageAsync(m => m.Payload.Contains("\"PING\"", StringComparison.Ordinal), Timeout);

        // Unanswered: the next beat skips it.
        await BeatAsync(time, gateway, "Heartbeat: 0 commands queued, 1 signed-in devices skipped");
        var page = await Eventually.UntilAsync(async () =>
            await gateway.Http.GetFromJsonAsync<Api.Page<Commands.CommandView>>("/api/devices/beating/commands", GatewayApp.Json),
            p => p is { Items.Count: >= 1 }, Timeout, "the heartbeat command is listed");
        Assert.NotNull(page);
        Assert.Single(page.Items);
        Assert.Equal("heartbeat", page.Items[0].RequestedBy);
        Assert.Empty((await gateway.Http.GetFromJsonAsync<Api.Page<Commands.CommandView>>("/api/devices/silent/commands", GatewayApp.Json))!.Items);

        var id = page.Items[0].Id;
        Assert.Contains(id.ToString(), first.Payload, StringComparison.Ordinal);
        await device.PublishAsync(TopicRoots.Default.For("beating").CommandResponse, GatewayEndToEndTests.ArticleAnswer("beating", id, "PING", "PONG"));
        await gateway.WaitForCommandAsync(id, CommandStatus.Completed);

        await BeatAsync(time, gateway, "Heartbeat: 1 commands queued, 0 signed-in devices skipped");
        await device.WaitForMessageAsync(m => m.Payload.Contains("\"PING\"", StringComparison.Ordinal) && !m.Payload.Contains(id.ToString(), StringComparison.Ordinal),
            Timeout);
    }

    // Moves the clock one interval and waits until that beat has run and logged what it did.
    private static async Task BeatAsync(FakeTimeProvider time, GatewayApp gateway, string expected)
    {
        var before = gateway.Logs.Lines.Count(l => l.Contains(expected, StringComparison.Ordinal));
        time.Advance(TimeSpan.FromSeconds(10));
        await Eventually.UntilAsync(() => gateway.Logs.Lines.Count(l => l.Contains(expected, StringComparison.Ordinal)) > before, Timeout,
            $"the beat logs '{expected}'");
    }
}
