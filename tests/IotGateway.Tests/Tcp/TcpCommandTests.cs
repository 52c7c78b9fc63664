using System.Diagnostics;
using IotGateway.Commands;
using static IotGateway.Tests.Tcp.TcpDeviceTests;
using TcpData = IotGateway.Tests.Tcp.TcpDeviceTests;

namespace IotGateway.Tests.Tcp;

// Commands for the article's TCP devices go over their own connection: one per write, the next after the answer (or
// a timeout), in queue order; queued while the device is away and written when it returns; Published means written.
public sealed class SqliteTcpCommandTests : TcpCommandTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresTcpCommandTests : TcpCommandTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class TcpCommandTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    protected abstract DatabaseProvider Provider { get; }

    private Task<TcpGateway> StartGatewayAsync(Action<Dictionary<string, string?>>? configure = null) =>
        TcpGateway.StartAsync(configure, Provider);

    [SkippableFact]
    public async Task ACommandIsWrittenToTheConnectedDeviceAndItsAnswerCompletesIt()
    {
        await using var gateway = await StartGatewayAsync();
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("tcp-cmd") + TcpData.Data("tcp-cmd", 21.5));
        await gateway.App.WaitForDeviceAsync("tcp-cmd", d => d.SignedIn && d.Transport == "tcp" && d.TelemetryCount == 1,
            "signed in over TCP, its reading stored");

        var queued = await gateway.App.QueueCommandAsync("tcp-cmd", new { command = "PING" });
        var (request, objectsInRead) = await device.ReceiveAsync();
        Assert.Equal(1, objectsInRead);
        Assert.Equal(queued.Id.ToString(), request.GetProperty("uuid").GetString());
        Assert.Equal("PING", request.GetProperty("command").GetString());
        await gateway.App.WaitForCommandAsync(queued.Id, CommandStatus.Published);

        // The article's text spells the answer's type COMMAND_RESP; its code, commandResp. Both count.
        await device.SendAsync($$"""{"deviceId":"tcp-cmd","messageType":"COMMAND_RESP","commandResult":"PONG","uuid":"{{queued.Id}}","command":"PING"}""");
        var done = await gateway.App.WaitForCommandAsync(queued.Id, CommandStatus.Completed);
        Assert.Equal("PONG", done.Result?.GetString());
        Assert.NotNull(done.PublishedAt);
    }

    [SkippableFact]
    public async Task CommandsGoOutInQueueOrderEachAfterTheAnswerToTheLast()
    {
        await using var gateway = await StartGatewayAsync(s => s["Tcp:AnswerTimeoutSeconds"] = "60");
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("tcp-order"));
        await gateway.App.WaitForDeviceAsync("tcp-order", d => d.SignedIn, "signed in");

        var ids = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add((await gateway.App.QueueCommandAsync("tcp-order", new { command = "PING", payload = new { n = i } })).Id);
        }

        foreach (var id in ids)
        {
            var (request, objectsInRead) = await device.ReceiveAsync();
            Assert.Equal(1, objectsInRead);
            Assert.Equal(id.ToString(), request.GetProperty("uuid").GetString());
            await device.SendAsync($$"""{"deviceId":"tcp-order","messageType":"commandResp","commandResult":"PONG","uuid":"{{id}}","command":"PING"}""");
        }

        foreach (var id in ids)
        {
            await gateway.App.WaitForCommandAsync(id, CommandStatus.Completed);
        }
    }

    [SkippableFact]
    public async Task AnUnansweredCommandHoldsTheNextOneForTheAnswerTimeoutOnly()
    {
        await using var gateway = await StartGatewayAsync(s => s["Tcp:AnswerTimeoutSeconds"] = "1.5");
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("tcp-silent"));
        await gateway.App.WaitForDeviceAsync("tcp-silent", d => d.SignedIn, "signed in");

        var first = await gateway.App.QueueCommandAsync("tcp-silent", new { command = "PING" });
        var second = await gateway.App.QueueCommandAsync("tcp-silent", new { command = "PING" });
        Assert.Equal(first.Id.ToString(), (await device.ReceiveAsync()).Json.GetProperty("uuid").GetString());
        Assert.Equal(second.Id.ToString(), (await device.ReceiveAsync()).Json.GetProperty("uuid").GetString());
        // By the gateway's clock (the test's own reads may lag on a loaded machine): the first was written after it was
        // queued, and the second only once the answer timeout had passed since that write.
        var created = (await gateway.App.GetCommandAsync(first.Id)).CreatedAt;
        var next = (await gateway.App.WaitForCommandAsync(second.Id, CommandStatus.Published)).PublishedAt!.Value;
        Assert.True(next - created >= TimeSpan.FromSeconds(1.5),
            $"the second command was written {(next - created).TotalSeconds:0.00} s after the first was queued, before the answer timeout");
    }

    [SkippableFact]
    public async Task ADeviceThatHasNotAnsweredYetDoesNotHoldUpOtherDevicesCommands()
    {
        // One publishing slot: waiting for the quiet device's answer must not take it.
        await using var gateway = await StartGatewayAsync(s =>
        {
            s["Commands:MaxConcurrentLanes"] = "1";
            s["Tcp:AnswerTimeoutSeconds"] = "300";
        });
        using var quiet = await gateway.ConnectAsync();
        using var busy = await gateway.ConnectAsync();
        await quiet.SendAsync(Signup("tcp-quiet"));
        await busy.SendAsync(Signup("tcp-busy"));
        await gateway.App.WaitForDeviceAsync("tcp-quiet", d => d.SignedIn, "signed in");
        await gateway.App.WaitForDeviceAsync("tcp-busy", d => d.SignedIn, "signed in");

        var first = await gateway.App.QueueCommandAsync("tcp-quiet", new { command = "PING" });
        var second = await gateway.App.QueueCommandAsync("tcp-quiet", new { command = "PING" });
        Assert.Equal(first.Id.ToString(), (await quiet.ReceiveAsync()).Json.GetProperty("uuid").GetString());

        for (var i = 0; i < 3; i++)
        {
            var command = await gateway.App.QueueCommandAsync("tcp-busy", new { command = "PING" });
            Assert.Equal(command.Id.ToString(), (await busy.ReceiveAsync()).Json.GetProperty("uuid").GetString());
            await busy.SendAsync(Answer("tcp-busy", command.Id));
            await gateway.App.WaitForCommandAsync(command.Id, CommandStatus.Completed);
        }

        // The quiet device's second command still waits for the answer to its first, and goes once it comes.
        Assert.Equal(CommandStatus.Pending, (await gateway.App.GetCommandAsync(second.Id)).Status);
        await quiet.SendAsync(Answer("tcp-quiet", first.Id));
        Assert.Equal(second.Id.ToString(), (await quiet.ReceiveAsync()).Json.GetProperty("uuid").GetString());
    }

    [SkippableFact]
    public async Task ADeviceThatDoesNotReadItsConnectionIsClosedAndItsCommandStaysPending()
    {
        await using var gateway = await StartGatewayAsync(s =>
        {
            s["Commands:MaxConcurrentLanes"] = "1";
            s["Tcp:AnswerTimeoutSeconds"] = "1";
            s["Tcp:IdleTimeoutSeconds"] = "600";
        });
        using var deaf = await gateway.ConnectAsync(receiveBufferBytes: 4096);
        await deaf.SendAsync(Signup("tcp-deaf"));
        await gateway.App.WaitForDeviceAsync("tcp-deaf", d => d.SignedIn, "signed in");

        // Large commands fill what the kernel buffers for a device that never reads; the next write cannot finish.
        var blob = new string('x', 48_000);
        var queued = new List<Guid>();
        for (var i = 0; i < 4; i++)
        {
            queued.Add((await gateway.App.QueueCommandAsync("tcp-deaf", new { command = "PUSH", payload = new { blob } })).Id);
        }

        await gateway.App.WaitForDeviceAsync("tcp-deaf", d => !d.SignedIn, "signed out: the gateway closed its connection");
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("does not read its connection"), Timeout, "the reason is logged");
        var statuses = new List<CommandStatus>();
        foreach (var id in queued)
        {
            statuses.Add((await gateway.App.GetCommandAsync(id)).Status);
        }

        Assert.Contains(CommandStatus.Published, statuses);
        Assert.Equal(CommandStatus.Pending, statuses[^1]);

        // The publishing slot is free again, and the device gets what was not written when it comes back reading.
        using var again = await gateway.ConnectAsync();
        await again.SendAsync(Signup("tcp-deaf"));
        var next = queued[statuses.IndexOf(CommandStatus.Pending)];
        Assert.Equal(next.ToString(), (await again.ReceiveAsync()).Json.GetProperty("uuid").GetString());
    }

    [SkippableFact]
    public async Task CancellingTheCommandADeviceIsAnsweringLetsTheNextGoAtOnce()
    {
        await using var gateway = await StartGatewayAsync(s => s["Tcp:AnswerTimeoutSeconds"] = "300");
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("tcp-cancel"));
        await gateway.App.WaitForDeviceAsync("tcp-cancel", d => d.SignedIn, "signed in");

        var first = await gateway.App.QueueCommandAsync("tcp-cancel", new { command = "REBOOT" });
        var second = await gateway.App.QueueCommandAsync("tcp-cancel", new { command = "PING" });
        Assert.Equal(first.Id.ToString(), (await device.ReceiveAsync()).Json.GetProperty("uuid").GetString());
        await gateway.App.WaitForCommandAsync(first.Id, CommandStatus.Published);
        Assert.Equal(HttpStatusCode.OK, (await gateway.App.Http.DeleteAsync($"/api/commands/{first.Id}")).StatusCode);

        Assert.Equal(second.Id.ToString(), (await device.ReceiveAsync()).Json.GetProperty("uuid").GetString());
        // The late answer to the cancelled one changes nothing.
        await device.SendAsync(Answer("tcp-cancel", first.Id) + Answer("tcp-cancel", second.Id));
        await gateway.App.WaitForCommandAsync(second.Id, CommandStatus.Completed);
        Assert.Equal(CommandStatus.Cancelled, (await gateway.App.GetCommandAsync(first.Id)).Status);
    }

    [SkippableFact]
    public async Task ACommandQueuedWhileTheDeviceIsAwayIsWrittenWhenItReturns()
    {
        await using var gateway = await StartGatewayAsync();
        using (var first = await gateway.ConnectAsync())
        {
            await first.SendAsync(Signup("tcp-away") + TcpData.Data("tcp-away", 1));
            await gateway.App.WaitForDeviceAsync("tcp-away", d => d.SignedIn && d.TelemetryCount == 1, "signed in");
        }

        await gateway.App.WaitForDeviceAsync("tcp-away", d => !d.SignedIn, "signed out when its connection closed");
        var queued = await gateway.App.QueueCommandAsync("tcp-away", new { command = "PING", ttlSeconds = 300 });
        var expiring = await gateway.App.QueueCommandAsync("tcp-away", new { command = "PING", ttlSeconds = 1 });
        var cancelled = await gateway.App.QueueCommandAsync("tcp-away", new { command = "PING", ttlSeconds = 300 });
        Assert.Equal(HttpStatusCode.OK, (await gateway.App.Http.DeleteAsync($"/api/commands/{cancelled.Id}")).StatusCode);
        await gateway.App.WaitForCommandAsync(expiring.Id, CommandStatus.Expired);
        Assert.Equal(CommandStatus.Pending, (await gateway.App.GetCommandAsync(queued.Id)).Status);

        using var again = await gateway.ConnectAsync();
        await again.SendAsync(Signup("tcp-away"));
        var (request, _) = await again.ReceiveAsync();
        Assert.Equal(queued.Id.ToString(), request.GetProperty("uuid").GetString());
        await again.SendAsync($$"""{"deviceId":"tcp-away","messageType":"commandResp","commandResult":"PONG","uuid":"{{queued.Id}}","command":"PING"}""");
        await gateway.App.WaitForCommandAsync(queued.Id, CommandStatus.Completed);

        // Neither the expired nor the cancelled command was written: the next thing on the socket is a new one.
        var marker = await gateway.App.QueueCommandAsync("tcp-away", new { command = "MARKER" });
        Assert.Equal(marker.Id.ToString(), (await again.ReceiveAsync()).Json.GetProperty("uuid").GetString());
    }

    [SkippableFact]
    public async Task TheHeartbeatPingReachesTcpDevices()
    {
        await using var gateway = await StartGatewayAsync(s =>
        {
            s["Commands:Heartbeat:Enabled"] = "true";
            s["Commands:Heartbeat:IntervalSeconds"] = "0.5";
        });
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("tcp-heart"));
        var (ping, _) = await device.ReceiveAsync();
        Assert.Equal("PING", ping.GetProperty("command").GetString());
    }

    [SkippableFact]
    public async Task TcpDevicesLeftSignedInByAStoppedGatewayAreSignedOutAtItsNextStart()
    {
        await using var gateway = await StartGatewayAsync();
        using (var device = await gateway.ConnectAsync())
        {
            await device.SendAsync(Signup("tcp-left"));
            await gateway.App.WaitForDeviceAsync("tcp-left", d => d.SignedIn, "signed in");
        }

        await gateway.App.WaitForDeviceAsync("tcp-left", d => !d.SignedIn, "signed out");
        await gateway.App.StopAsync();
        // As a crash leaves it: signed in, its connection held by this instance.
        Assert.Equal(1, gateway.App.Storage.Execute(
            $"""UPDATE "Devices" SET "SignedIn" = TRUE, "TcpInstance" = '{gateway.App.ClientId}' WHERE "Id" = 'tcp-left'"""));

        await gateway.App.RestartAsync();
        await gateway.App.WaitForDeviceAsync("tcp-left", d => !d.SignedIn, "signed out at the start");
    }

    private static string Answer(string deviceId, Guid commandId) =>
        $$"""{"deviceId":"{{deviceId}}","messageType":"commandResp","commandResult":"PONG","uuid":"{{commandId}}","command":"PING"}""";
}
