using DeviceSimulator.Devices;
using DeviceSimulator.Fleet;
using IotGateway.Commands;
using IotGateway.Tests.Simulator;

namespace IotGateway.Tests.Gateway;

// The simulator playing the article's device, against the real gateway and a real Mosquitto.
public sealed class SimulatorWithGatewayTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task WindowedDeviceRunsCommandsQueuedWhileItWasOffline()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using var device = new RunningDevice(new DeviceSettings
        {
            Broker = BrokerAddress.Parse(broker.Url),
            DeviceId = "windowed-1",
            Interval = TimeSpan.FromSeconds(1.5),
            OnlineWindow = TimeSpan.FromSeconds(0.3),
        });

        await gateway.WaitForDeviceAsync("windowed-1", d => d.SignedIn && d.TelemetryCount > 0, "the device signs in and sends a reading", Timeout);

        // Queued while it is offline: executed at its next window.
        await Eventually.UntilAsync(() => !device.Device.IsConnected, Timeout, "the device is between windows");
        var ping = await gateway.QueueCommandAsync("windowed-1", new { command = "PING" });
        var unknown = await gateway.QueueCommandAsync("windowed-1", new { command = "SELF_DESTRUCT" });
        Assert.Equal("PONG", (await gateway.WaitForCommandAsync(ping.Id, CommandStatus.Completed, Timeout)).Result?.GetString());
        Assert.Equal("ERROR_UNKNOWN_COMMAND", (await gateway.WaitForCommandAsync(unknown.Id, CommandStatus.Failed, Timeout)).Result?.GetString());

        // REBOOT drops the connection without DISCONNECT: the broker's Last Will signs it out, the next window back in.
        var reboot = await gateway.QueueCommandAsync("windowed-1", new { command = "REBOOT" });
        await gateway.WaitForCommandAsync(reboot.Id, CommandStatus.Completed, Timeout);
        await gateway.WaitForDeviceAsync("windowed-1", d => !d.SignedIn, "the Last Will marks it signed out", Timeout);
        await gateway.WaitForDeviceAsync("windowed-1", d => d.SignedIn, "the next window signs it in again", Timeout);

        // Ctrl+C: a retained SIGN_OUT.
        await device.StopAsync();
        await gateway.WaitForDeviceAsync("windowed-1", d => !d.SignedIn, "stopping the device signs it out", Timeout);
    }

    [SkippableFact]
    public async Task FleetOfOneThousandDevicesAnswersABulkCommand()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await FleetAnswersABulkCommandAsync(gateway, new DeviceSettings
        {
            Broker = BrokerAddress.Parse(broker.Url),
            AlwaysOnline = true,
            Interval = TimeSpan.FromSeconds(5),
            LogEachMessage = false,
        });
    }

    // The same thousand devices speaking the article's plain TCP to the gateway's listener: one socket each.
    [Fact]
    public async Task FleetOfOneThousandTcpDevicesAnswersABulkCommand()
    {
        await using var gateway = await Tcp.TcpGateway.StartAsync(s => s["Logging:LogLevel:IotGateway.Tcp"] = "Information");
        await FleetAnswersABulkCommandAsync(gateway.App, new DeviceSettings
        {
            Broker = BrokerAddress.Parse("mqtt://127.0.0.1:1"),
            Transport = DeviceTransport.Tcp,
            TcpServer = new System.Net.DnsEndPoint("127.0.0.1", gateway.Port),
            AlwaysOnline = true,
            Interval = TimeSpan.FromSeconds(5),
            LogEachMessage = false,
        });
        var page = await gateway.App.Http.GetFromJsonAsync<Api.Page<Devices.DeviceView>>("/api/devices?limit=1000", GatewayApp.Json);
        Assert.All(page!.Items, d => Assert.Equal("tcp", d.Transport));
    }

    private static async Task FleetAnswersABulkCommandAsync(GatewayApp gateway, DeviceSettings template)
    {
        const int devices = 1000;
        using var fleet = new DeviceFleet(new FleetSettings { Devices = devices, IdPrefix = "fleet", Template = template }, TextWriter.Null);
        using var stop = new CancellationTokenSource();
        var running = fleet.RunAsync(stop.Token);

        await Eventually.UntilAsync(async () =>
        {
            var page = await gateway.Http.GetFromJsonAsync<Api.Page<Devices.DeviceView>>("/api/devices?signedIn=true&limit=1000", GatewayApp.Json);
            return page!.Items.Count == devices;
        }, TimeSpan.FromSeconds(60), "all 1,000 devices are signed in");

        var post = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", signedIn = true });
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var accepted = await post.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json);
        Assert.Equal(devices, accepted!.Count);

        BulkCommandSummary? last = null;
        BulkCommandSummary summary;
        try
        {
            summary = await Eventually.UntilAsync(async () =>
                (last = await gateway.Http.GetFromJsonAsync<BulkCommandSummary>($"/api/commands/bulk/{accepted.BatchId}", GatewayApp.Json)) is { } s
                    && s.ByStatus.GetValueOrDefault(CommandStatus.Completed) == devices ? s : null,
                TimeSpan.FromSeconds(60), "every device answers PONG");
        }
        catch (TimeoutException e)
        {
            // Which statuses the stragglers are stuck in.
            throw new TimeoutException($"{e.Message} Last summary: {string.Join(", ", last?.ByStatus.Select(p => $"{p.Key} {p.Value}") ?? [])}.", e);
        }

        Assert.Equal(devices, summary.Total);

        await stop.CancelAsync();
        var result = await running;
        Assert.Equal(devices, result.CommandsAnswered);
        Assert.Equal(0, result.ConnectFailures);
    }

    private static async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        return await MosquittoBroker.StartAsync();
    }
}
