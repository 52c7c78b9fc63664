using static IotGateway.Tests.Tcp.TcpDeviceTests;

namespace IotGateway.Tests.Tcp;

// Two gateways on one PostgreSQL database and one Mosquitto, each with its own TCP listener: a TCP device's
// connection lives on one instance, so its commands go out there whichever instance an operator asked.
public sealed class TcpSeveralGatewaysTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task ACommandQueuedOnOneInstanceGoesOutOnTheInstanceHoldingTheDevicesConnection()
    {
        await using var broker = await SeveralGatewaysTests.StartBrokerAsync();
        await using var first = await TcpGateway.StartAsync(broker.Url, s => s["Mqtt:SharedSubscriptionGroup"] = "gateways");
        await using var second = await TcpGateway.StartAsync(broker.Url, s =>
        {
            s["Mqtt:SharedSubscriptionGroup"] = "gateways";
            s["ConnectionStrings:Gateway"] = first.App.PostgresConnectionString;
        });

        using (var device = await first.ConnectAsync())
        {
            await device.SendAsync(Signup("tcp-far"));
            await second.App.WaitForDeviceAsync("tcp-far", d => d.SignedIn && d.Transport == "tcp", "signed in on the first instance");

            var queued = await second.App.QueueCommandAsync("tcp-far", new { command = "PING" });
            var (request, _) = await device.ReceiveAsync(Timeout);
            Assert.Equal(queued.Id.ToString(), request.GetProperty("uuid").GetString());
            await device.SendAsync($$"""{"deviceId":"tcp-far","messageType":"commandResp","commandResult":"PONG","uuid":"{{queued.Id}}","command":"PING"}""");
            Assert.Equal("PONG", (await second.App.WaitForCommandAsync(queued.Id, CommandStatus.Completed)).Result?.GetString());
        }

        await second.App.WaitForDeviceAsync("tcp-far", d => !d.SignedIn, "signed out when its connection closed");

        // Queued while it is away, through the instance it was on; it comes back on the other one and gets it there.
        var waiting = await first.App.QueueCommandAsync("tcp-far", new { command = "GET_CONFIG" });
        using var back = await second.ConnectAsync();
        await back.SendAsync(Signup("tcp-far"));
        var (again, _) = await back.ReceiveAsync(Timeout);
        Assert.Equal(waiting.Id.ToString(), again.GetProperty("uuid").GetString());
        await first.App.WaitForCommandAsync(waiting.Id, CommandStatus.Published);
    }

    [SkippableFact]
    public async Task AnOldConnectionOnAnotherInstanceEndingDoesNotSignTheDeviceOut()
    {
        await using var broker = await SeveralGatewaysTests.StartBrokerAsync();
        await using var first = await TcpGateway.StartAsync(broker.Url, s => s["Mqtt:SharedSubscriptionGroup"] = "gateways");
        await using var second = await TcpGateway.StartAsync(broker.Url, s =>
        {
            s["Mqtt:SharedSubscriptionGroup"] = "gateways";
            s["ConnectionStrings:Gateway"] = first.App.PostgresConnectionString;
        });

        using var old = await first.ConnectAsync();
        await old.SendAsync(Signup("tcp-moved"));
        await first.App.WaitForDeviceAsync("tcp-moved", d => d.SignedIn, "signed in on the first instance");
        using var moved = await second.ConnectAsync();
        await moved.SendAsync(Signup("tcp-moved"));
        await Eventually.UntilAsync(() => first.App.Storage.Execute(
            $"""UPDATE "Devices" SET "Transport" = 'tcp' WHERE "Id" = 'tcp-moved' AND "TcpInstance" = '{second.App.ClientId}'""") == 1,
            Timeout, "the second instance holds the device");

        await using var events = await EventStreamClient.OpenAsync(first.App.Http, "/api/events");
        var oldEnd = $":{((System.Net.IPEndPoint)old.Socket.LocalEndPoint!).Port} disconnected";
        old.Close();
        await Eventually.UntilAsync(() => first.App.Logs.Contains(oldEnd), Timeout, "the first instance sees the old connection end");
        // The first instance stores presence in the order it queued it: once the marker's sign-in, queued after the old
        // connection's sign-out, is news, that sign-out was handled.
        using var marker = await first.ConnectAsync();
        await marker.SendAsync(Signup("tcp-marker"));
        await Eventually.UntilAsync(() => events.Events.Any(e => e.GetProperty("deviceId").GetString() == "tcp-marker"), Timeout,
            "the marker's sign-in is an event on the first instance");

        Assert.DoesNotContain(events.Events, e => e.GetProperty("deviceId").GetString() == "tcp-moved"
            && e.GetProperty("type").GetString() == "presence" && !e.GetProperty("signedIn").GetBoolean());
        Assert.True((await first.App.GetDeviceAsync("tcp-moved"))!.SignedIn, "still signed in: the second instance holds it");
    }
}
