using IotGateway.Commands;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Gateway;

// A command handed to its device's lane while every publishing slot is busy (Commands:MaxConcurrentLanes) waits in
// memory; cancelled meanwhile, it must never reach the broker. Real Mosquitto, up the whole time, on both providers.
public sealed class SqliteLaneCancelTests : LaneCancelTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresLaneCancelTests : LaneCancelTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;

    // Cancelled through another instance: the lane's instance hears of it through the cluster signals.
    [SkippableFact]
    public async Task ACommandCancelledOnAnotherInstanceWhileItsLaneWaitsIsNeverPublished()
    {
        await using var broker = await StartBrokerAsync();
        await using var lanes = await GatewayApp.StartAsync(broker.Url, s =>
        {
            s["Commands:MaxConcurrentLanes"] = "1";
            s["Mqtt:SharedSubscriptionGroup"] = "gateways";
        }, provider: Provider);
        await using var other = await GatewayApp.StartAsync(broker.Url, s =>
        {
            s["Mqtt:SharedSubscriptionGroup"] = "gateways";
            s["ConnectionStrings:Gateway"] = lanes.PostgresConnectionString;
        }, provider: Provider);
        await CancelWhileTheLaneWaitsAsync(broker, lanes, other);
    }
}

public abstract class LaneCancelTests
{
    // Enough for the busy device's lane to hold the one slot for seconds while the test queues and cancels.
    private const int BusyCommands = 2000;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    // Ceiling for the busy lane to publish all of its commands on a loaded 2-core machine.
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(180);

    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task ACommandCancelledWhileItsLaneWaitsForASlotIsNeverPublished()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Commands:MaxConcurrentLanes"] = "1", provider: Provider);
        await CancelWhileTheLaneWaitsAsync(broker, gateway, gateway);
    }

    // `gateway` has one publishing slot and holds the lanes; the cancels go through `canceller` (the same or another instance).
    protected static async Task CancelWhileTheLaneWaitsAsync(MosquittoBroker broker, GatewayApp gateway, GatewayApp canceller)
    {
        await using var watcher = await TestMqttClient.ConnectAsync(broker, "watcher");
        await watcher.SubscribeAsync(TopicRoots.Default.For("+").CommandRequest);
        // Both devices are subscribed and never answer.
        await using var busy = await GatewayEndToEndTests.SignInAsync(broker, gateway, "busy-a");
        await using var quiet = await GatewayEndToEndTests.SignInAsync(broker, gateway, "quiet-b");

        // busy-a's lane takes the one publishing slot and keeps it until its whole queue is out.
        using (var scope = gateway.Services.CreateScope())
        {
            await scope.ServiceProvider.GetRequiredService<CommandIntake>().QueueManyAsync([.. Enumerable.Repeat("busy-a", BusyCommands)],
                new CommandRequestSpec("PING", Payload: null, TtlSeconds: 600, RequestedBy: "test"), batchId: null, default);
        }

        await watcher.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For("busy-a").CommandRequest, Timeout);

        // quiet-b's commands are handed to its lane, which waits for the slot; one is cancelled, one cancelled with its batch.
        var doomed = await gateway.QueueCommandAsync("quiet-b", new { command = "REBOOT" });
        Assert.Equal(HttpStatusCode.OK, (await canceller.Http.DeleteAsync($"/api/commands/{doomed.Id}")).StatusCode);
        var bulk = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "FACTORY_RESET", deviceIds = new[] { "quiet-b" } });
        Assert.Equal(HttpStatusCode.Accepted, bulk.StatusCode);
        var batch = (await bulk.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json))!;
        var batchCancel = await canceller.Http.DeleteAsync($"/api/commands/bulk/{batch.BatchId}");
        Assert.Equal(1, (await batchCancel.Content.ReadFromJsonAsync<BulkCancelled>(GatewayApp.Json))!.Cancelled);
        var batchCommand = Assert.Single((await gateway.Http.GetFromJsonAsync<Page<CommandView>>(
            $"/api/commands/bulk/{batch.BatchId}/commands", GatewayApp.Json))!.Items);

        // The slot was busy from before quiet-b's first command until after both cancels: busy-a's lane holds it while
        // it has commands left. Otherwise quiet-b's lane could have published them before they were cancelled.
        var stillPending = await gateway.Http.GetFromJsonAsync<Page<CommandView>>("/api/commands?deviceId=busy-a&status=Pending&limit=1", GatewayApp.Json);
        Assert.True(stillPending!.Items.Count == 1, $"busy-a's {BusyCommands} commands were all out before the cancels: the test did not hold the slot");

        // Once busy-a's queue is out, quiet-b's lane has the slot. A later command for quiet-b, queued only then (so the
        // scan, which sends lanes of devices with Pending commands back to the database, does not meet quiet-b's lane
        // first), goes out after anything that lane still held.
        await Eventually.UntilAsync(async () => (await gateway.Http.GetFromJsonAsync<Page<CommandView>>(
                "/api/commands?deviceId=busy-a&status=Pending&limit=1", GatewayApp.Json))!.Items.Count == 0,
            DrainTimeout, $"busy-a's {BusyCommands} commands are out");
        var kept = await gateway.QueueCommandAsync("quiet-b", new { command = "PING" });
        await quiet.WaitForMessageAsync(m => m.Payload.Contains(kept.Id.ToString(), StringComparison.Ordinal), Timeout);
        Assert.DoesNotContain(gateway.Logs.Lines, l => l.Contains("Publishing busy-a's commands stopped", StringComparison.Ordinal));

        foreach (var cancelled in new[] { doomed.Id, batchCommand.Id })
        {
            Assert.DoesNotContain(watcher.ReceivedMessages, m => m.Payload.Contains(cancelled.ToString(), StringComparison.Ordinal));
            Assert.DoesNotContain(quiet.ReceivedMessages, m => m.Payload.Contains(cancelled.ToString(), StringComparison.Ordinal));
            var command = await gateway.GetCommandAsync(cancelled);
            Assert.Equal(CommandStatus.Cancelled, command.Status);
            Assert.Null(command.PublishedAt);
        }
    }

    protected async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return await MosquittoBroker.StartAsync();
    }
}
