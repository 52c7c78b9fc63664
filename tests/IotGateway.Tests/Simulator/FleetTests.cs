using DeviceSimulator.Fleet;

namespace IotGateway.Tests.Simulator;

public class FleetTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task FleetOfFiftyAlwaysOnlineDevicesAllSignInAnswerAndSignOut()
    {
        await using var broker = await SimulatorBroker.StartAsync();
        await using var gateway = await GatewayStandIn.ConnectAsync(broker);
        var settings = new FleetSettings
        {
            Template = broker.DeviceSettings("unused", intervalSeconds: 1) with { AlwaysOnline = true, LogEachMessage = false },
            Devices = 50,
            IdPrefix = "fleet-test",
            MaxConcurrentConnects = 10,
        };
        using var fleet = new DeviceFleet(settings, TextWriter.Null);
        using var stop = new CancellationTokenSource();
        var run = fleet.RunAsync(stop.Token);

        var ids = Enumerable.Range(1, 50).Select(n => $"fleet-test-{n:D4}").ToList();
        Assert.Equal(ids, fleet.Devices.Select(d => d.DeviceId));
        foreach (var id in ids)
        {
            await gateway.WaitForPresenceAsync(id, "SIGN_IN", Deadline);
        }

        await Until.TrueAsync(() => fleet.AllSignedInAfter is not null, Deadline, "the fleet to notice that all devices signed in");

        var commands = new List<(string Id, string Uuid)>();
        foreach (var id in ids)
        {
            commands.Add((id, await gateway.SendCommandAsync(id, "PING")));
        }

        foreach (var (id, uuid) in commands)
        {
            Assert.Equal("PONG", (await gateway.WaitForAnswerAsync(id, uuid, Deadline)).GetProperty("commandResult").GetString());
        }

        await stop.CancelAsync();
        var summary = await run.WaitAsync(Deadline);

        foreach (var id in ids)
        {
            await gateway.WaitForPresenceAsync(id, "SIGN_OUT", Deadline);
        }

        Assert.Equal(50, summary.Devices);
        Assert.Equal(50, summary.CommandsAnswered);
        Assert.Equal(0, summary.SignedIn);
        Assert.Equal(0, summary.ConnectFailures);
    }

    [Fact]
    public void FleetSpreadsTheFirstWindowsEvenlyOverOneInterval()
    {
        var settings = new FleetSettings
        {
            Template = new DeviceSimulator.Devices.DeviceSettings { Broker = IotGateway.Protocol.BrokerAddress.Parse("mqtt://127.0.0.1:1"), Interval = TimeSpan.FromSeconds(10) },
            Devices = 4,
        };
        using var fleet = new DeviceFleet(settings, TextWriter.Null);

        Assert.Equal(["sim-device-0001", "sim-device-0002", "sim-device-0003", "sim-device-0004"], fleet.Devices.Select(d => d.DeviceId));
        Assert.Equal(
            [TimeSpan.Zero, TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(7.5)],
            fleet.Devices.Select(d => d.Settings.FirstWindowDelay!.Value));
        Assert.Equal("sim-device-10000", DeviceFleet.DeviceIdFor("sim-device", 10_000));
    }
}
