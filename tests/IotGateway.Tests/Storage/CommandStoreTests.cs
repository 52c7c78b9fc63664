using IotGateway.Commands;
using IotGateway.Ingest;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Storage;

// The command store's transitions and lane leases, on both providers, against a migrated database (the gateway's
// own, which is not connected to any broker, so its dispatcher stays out of the way).
public sealed class SqliteCommandStoreTests : CommandStoreTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresCommandStoreTests : CommandStoreTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class CommandStoreTests
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task ALaneIsHeldByOneInstanceUntilItsLeaseRunsOut()
    {
        await using var gateway = await StartAsync();
        var store = gateway.Services.GetRequiredService<ICommandStore>();

        var first = await store.QueueAsync([NewCommand("dev-1"), NewCommand("dev-2")], LeaseAt("a", T0), default);
        Assert.Equal(["dev-1", "dev-2"], first.Claimed.Order());
        Assert.Empty(first.HeldElsewhere);

        // Another instance queueing for dev-1 meanwhile learns who publishes it; its claim fails while the lease lives.
        var second = await store.QueueAsync([NewCommand("dev-1"), NewCommand("dev-3")], LeaseAt("b", T0.AddSeconds(1)), default);
        Assert.Equal(["dev-3"], second.Claimed);
        Assert.Equal(["dev-1"], second.HeldElsewhere["a"]);
        Assert.Empty(await store.ClaimLanesAsync(["dev-1"], LeaseAt("b", T0.AddSeconds(29)), default));

        // The owner renews; the other takes over only once the lease ran out (the owner died).
        Assert.Equal(["dev-1"], await store.ClaimLanesAsync(["dev-1"], LeaseAt("a", T0.AddSeconds(20)), default));
        Assert.Empty(await store.ClaimLanesAsync(["dev-1"], LeaseAt("b", T0.AddSeconds(49)), default));
        Assert.Equal(["dev-1"], await store.ClaimLanesAsync(["dev-1"], LeaseAt("b", T0.AddSeconds(51)), default));

        // The scan claims devices with Pending commands that nobody else holds: dev-2 and dev-3, whose leases ran out.
        Assert.Equal(["dev-2", "dev-3"], (await store.ClaimPendingLanesAsync(LeaseAt("c", T0.AddSeconds(52)), default)).Order());

        // A clean stop lets go of every lane at once.
        await store.ReleaseLanesAsync("b", default);
        Assert.Equal(["dev-1", "dev-2", "dev-3"], (await store.ClaimPendingLanesAsync(LeaseAt("c", T0.AddSeconds(53)), default)).Order());
    }

    [SkippableFact]
    public async Task EveryTransitionHappensOnceAndOnlyFromAnOpenCommand()
    {
        await using var gateway = await StartAsync();
        var store = gateway.Services.GetRequiredService<ICommandStore>();
        var (first, second, third) = (NewCommand("dev"), NewCommand("dev"), NewCommand("dev"));
        await store.QueueAsync([first, second, third], LeaseAt("a", T0), default);
        Assert.True(first.Sequence < second.Sequence && second.Sequence < third.Sequence);

        // A lane takes the oldest Pending command; once marked Published, the next one.
        Assert.Equal(first.Id, (await store.NextPendingAsync("dev", T0, default))!.Id);
        Assert.Equal([new CommandChanged(first.Id, first.DeviceId)], await store.MarkPublishedAsync([(first.Id, T0.AddSeconds(1))], default));
        Assert.Empty(await store.MarkPublishedAsync([(first.Id, T0.AddSeconds(2))], default));
        Assert.Equal(second.Id, (await store.NextPendingAsync("dev", T0, default))!.Id);

        // A cancelled Pending command is never handed to a lane, and cancels once.
        Assert.Equal(CancelResult.Cancelled, (await store.CancelAsync(second.Id, "op", T0.AddSeconds(3), default)).Result);
        Assert.Equal(new CancelOutcome(CancelResult.AlreadyFinished, CommandStatus.Cancelled), await store.CancelAsync(second.Id, "op", T0, default));
        Assert.Equal(CancelResult.NotFound, (await store.CancelAsync(Guid.NewGuid(), "op", T0, default)).Result);
        Assert.Equal(third.Id, (await store.NextPendingAsync("dev", T0, default))!.Id);

        // Expiry takes what is still open once its TTL ran out (the Published first and the Pending third), once.
        Assert.Empty(await store.ExpireDueAsync(T0.AddSeconds(59), default));
        Assert.Equal(new[] { first.Id, third.Id }.Order(), (await store.ExpireDueAsync(T0.AddSeconds(60), default)).Select(c => c.Id).Order());
        Assert.Empty(await store.ExpireDueAsync(T0.AddSeconds(61), default));
        Assert.Null(await store.NextPendingAsync("dev", T0, default));
        Assert.Equal(new CancelOutcome(CancelResult.AlreadyFinished, CommandStatus.Expired), await store.CancelAsync(third.Id, "op", T0, default));
    }

    [SkippableFact]
    public async Task ACommandAnsweredBeforeItsPublishedMarkWasNotPublishedAfterItsAnswer()
    {
        await using var gateway = await StartAsync();
        var store = gateway.Services.GetRequiredService<ICommandStore>();
        var command = NewCommand("dev");
        await store.QueueAsync([command], LeaseAt("a", T0), default);
        // A fast device's answer is committed before the mark of the write that carried the command.
        var answeredAt = T0.AddSeconds(1);
        Assert.Equal(1, gateway.Storage.Execute(
            $"""UPDATE "Commands" SET "Status" = 'Completed', "AnsweredAt" = {answeredAt.UtcTicks} WHERE "Id" = '{command.Id}'"""));

        Assert.Empty(await store.MarkPublishedAsync([(command.Id, answeredAt.AddMilliseconds(6))], default));
        var stored = await gateway.GetCommandAsync(command.Id);
        Assert.Equal(CommandStatus.Completed, stored.Status);
        Assert.Equal(answeredAt, stored.PublishedAt);
    }

    // Behind: the devices this instance claimed that have older Pending commands than the new ones (their lanes read
    // the database first). Commands no longer Pending do not count, nor do devices another instance holds.
    [SkippableFact]
    public async Task BehindNamesTheClaimedDevicesWithOlderPendingCommands()
    {
        await using var gateway = await StartAsync();
        var store = gateway.Services.GetRequiredService<ICommandStore>();
        var first = NewCommand("dev-1");
        Assert.Empty((await store.QueueAsync([first], LeaseAt("a", T0), default)).Behind);

        // dev-1 has first Pending, dev-2 nothing; two new commands for one device count once.
        var second = await store.QueueAsync([NewCommand("dev-1"), NewCommand("dev-2"), NewCommand("dev-1")], LeaseAt("a", T0), default);
        Assert.Equal(["dev-1"], second.Behind);

        // Another instance queueing for dev-1 (a's, with Pending commands) and dev-3: only what it claimed counts.
        var elsewhere = await store.QueueAsync([NewCommand("dev-1"), NewCommand("dev-3")], LeaseAt("b", T0.AddSeconds(1)), default);
        Assert.Equal(["dev-3"], elsewhere.Claimed);
        Assert.Equal(["dev-1"], elsewhere.HeldElsewhere["a"]);
        Assert.Empty(elsewhere.Behind);

        // Published, Cancelled and Expired commands are behind nothing.
        var dev1 = second.Commands.Concat(elsewhere.Commands).Where(c => c.DeviceId == "dev-1").Append(first);
        await store.MarkPublishedAsync([.. dev1.Select(c => (c.Id, T0.AddSeconds(2)))], default);
        var third = NewCommand("dev-1");
        Assert.Empty((await store.QueueAsync([third], LeaseAt("a", T0.AddSeconds(2)), default)).Behind);
        Assert.Equal(CancelResult.Cancelled, (await store.CancelAsync(third.Id, "op", T0.AddSeconds(3), default)).Result);
        Assert.Empty((await store.QueueAsync([NewCommand("dev-1")], LeaseAt("a", T0.AddSeconds(3)), default)).Behind);
        Assert.NotEmpty(await store.ExpireDueAsync(T0.AddSeconds(60), default));
        Assert.Empty((await store.QueueAsync([NewCommand("dev-1"), NewCommand("dev-2")], LeaseAt("a", T0.AddSeconds(60)), default)).Behind);
    }

    // A TCP device's lane belongs to the instance holding its connection: nobody else claims it (not even when its lane
    // is free or its lease ran out), that instance takes it over at once, and a device that is away is nobody's.
    [SkippableFact]
    public async Task ATcpDevicesLaneBelongsToTheInstanceHoldingItsConnection()
    {
        await using var gateway = await StartAsync();
        var store = gateway.Services.GetRequiredService<ICommandStore>();
        // tcp-2's lane is a's from when it was an MQTT device; then it connects over TCP to b.
        Assert.Equal(["tcp-2"], (await store.QueueAsync([NewCommand("tcp-2")], LeaseAt("a", T0), default)).Claimed);
        AddDevice(gateway, "tcp-1", "tcp", "b");
        AddDevice(gateway, "tcp-2", "tcp", "b");
        AddDevice(gateway, "away", "tcp", tcpInstance: null);
        AddDevice(gateway, "mqtt-1", "mqtt", tcpInstance: null);

        var queued = await store.QueueAsync([NewCommand("tcp-1"), NewCommand("tcp-2"), NewCommand("away"), NewCommand("mqtt-1")], LeaseAt("a", T0), default);
        Assert.Equal(["mqtt-1"], queued.Claimed);
        Assert.Equal(["tcp-1", "tcp-2"], queued.HeldElsewhere["b"].Order());
        Assert.Single(queued.HeldElsewhere);
        Assert.Empty(await store.ClaimLanesAsync(["tcp-1", "tcp-2", "away"], LeaseAt("a", T0.AddSeconds(100)), default));

        // b takes tcp-2 over while a's lease still runs; c, after every lease ran out, still gets only the MQTT device.
        Assert.Equal(["tcp-1", "tcp-2"], (await store.ClaimLanesAsync(["tcp-1", "tcp-2", "away"], LeaseAt("b", T0.AddSeconds(1)), default)).Order());
        Assert.Equal(["mqtt-1"], await store.ClaimPendingLanesAsync(LeaseAt("c", T0.AddSeconds(40)), default));
        Assert.Equal(["tcp-1", "tcp-2"], (await store.ClaimPendingLanesAsync(LeaseAt("b", T0.AddSeconds(41)), default)).Order());

        // Queued by b itself: claimed.
        Assert.Equal(["tcp-1"], (await store.QueueAsync([NewCommand("tcp-1")], LeaseAt("b", T0.AddSeconds(42)), default)).Claimed);
    }

    [SkippableFact]
    public async Task CancellingABatchCancelsItsOpenCommandsOnce()
    {
        await using var gateway = await StartAsync();
        var store = gateway.Services.GetRequiredService<ICommandStore>();
        var batchId = Guid.NewGuid();
        var (pending, published, answered) = (NewCommand("dev-1", batchId), NewCommand("dev-2", batchId), NewCommand("dev-3", batchId));
        var other = NewCommand("dev-1");
        await store.QueueAsync([pending, published, answered, other], LeaseAt("a", T0), default);
        await store.MarkPublishedAsync([(published.Id, T0.AddSeconds(1)), (answered.Id, T0.AddSeconds(1))], default);
        var answer = await AnswerAsync(gateway, answered.Id, answered.DeviceId, CommandStatus.Completed, T0.AddSeconds(2));
        Assert.Equal(T0, answer.FinishedCreatedAt);

        var cancelled = await store.CancelBatchAsync(batchId, "op", T0.AddSeconds(3), default);
        Assert.Equal(new[] { pending.Id, published.Id }.Order(), cancelled.Select(c => c.Id).Order());
        Assert.Equal(["dev-1", "dev-2"], cancelled.Select(c => c.DeviceId).Order());
        Assert.Empty(await store.CancelBatchAsync(batchId, "op", T0.AddSeconds(4), default));
        Assert.Empty(await store.CancelBatchAsync(Guid.NewGuid(), "op", T0, default));

        foreach (var id in new[] { pending.Id, published.Id })
        {
            var stored = await gateway.GetCommandAsync(id);
            Assert.Equal(CommandStatus.Cancelled, stored.Status);
            Assert.Equal("op", stored.CancelledBy);
            Assert.Equal(T0.AddSeconds(3), stored.CancelledAt);
        }

        Assert.Equal(CommandStatus.Completed, (await gateway.GetCommandAsync(answered.Id)).Status);
        Assert.Equal(other.Id, (await store.NextPendingAsync("dev-1", T0, default))!.Id);
    }

    // An answer finishes an open command of its own device once; otherwise it is ignored and says why.
    [SkippableFact]
    public async Task AnAnswerFinishesAnOpenCommandOfItsDeviceOnce()
    {
        await using var gateway = await StartAsync();
        var store = gateway.Services.GetRequiredService<ICommandStore>();
        var (pending, published, cancelled) = (NewCommand("dev"), NewCommand("dev"), NewCommand("dev"));
        await store.QueueAsync([pending, published, cancelled], LeaseAt("a", T0), default);
        await store.MarkPublishedAsync([(published.Id, T0.AddSeconds(1))], default);
        await store.CancelAsync(cancelled.Id, "op", T0.AddSeconds(1), default);

        // A fast device answers before its command is marked Published: Pending to Completed at once.
        Assert.Equal(T0, (await AnswerAsync(gateway, pending.Id, pending.DeviceId, CommandStatus.Completed, T0.AddSeconds(2))).FinishedCreatedAt);
        Assert.Equal(T0, (await AnswerAsync(gateway, published.Id, published.DeviceId, CommandStatus.Failed, T0.AddSeconds(2))).FinishedCreatedAt);
        var again = await AnswerAsync(gateway, published.Id, published.DeviceId, CommandStatus.Completed, T0.AddSeconds(3));
        Assert.Equal((null, CommandStatus.Failed), (again.FinishedCreatedAt, again.CurrentStatus));
        var late = await AnswerAsync(gateway, cancelled.Id, cancelled.DeviceId, CommandStatus.Completed, T0.AddSeconds(3));
        Assert.Equal((null, CommandStatus.Cancelled), (late.FinishedCreatedAt, late.CurrentStatus));
        // Another device's answer to dev's command, and an answer to no command at all, change nothing.
        var impostor = await AnswerAsync(gateway, pending.Id, "other", CommandStatus.Failed, T0.AddSeconds(3));
        Assert.Equal((null, (CommandStatus?)null), (impostor.FinishedCreatedAt, impostor.CurrentStatus));
        var unknown = await AnswerAsync(gateway, Guid.NewGuid(), "dev", CommandStatus.Completed, T0.AddSeconds(3));
        Assert.Equal((null, (CommandStatus?)null), (unknown.FinishedCreatedAt, unknown.CurrentStatus));

        var completed = await gateway.GetCommandAsync(pending.Id);
        Assert.Equal(CommandStatus.Completed, completed.Status);
        Assert.Equal(T0.AddSeconds(2), completed.AnsweredAt);
        Assert.Equal("DONE", completed.Result?.GetString());
        var failed = await gateway.GetCommandAsync(published.Id);
        Assert.Equal(CommandStatus.Failed, failed.Status);
        Assert.Equal(T0.AddSeconds(1), failed.PublishedAt);
        Assert.Null((await gateway.GetCommandAsync(cancelled.Id)).AnsweredAt);

        // Finished commands neither expire nor cancel.
        Assert.Empty(await store.ExpireDueAsync(T0.AddSeconds(60), default));
        Assert.Equal(new CancelOutcome(CancelResult.AlreadyFinished, CommandStatus.Completed), await store.CancelAsync(pending.Id, "op", T0, default));
    }

    // One ingest batch holding just this answer, as IngestWriter stores it.
    private static async Task<CommandAnswerWrite> AnswerAsync(GatewayApp gateway, Guid id, string deviceId, CommandStatus status, DateTimeOffset at)
    {
        var batch = new IngestBatch(at);
        batch.Seen(deviceId, at);
        var answer = new CommandAnswerWrite(id, deviceId, status, "DONE",
            $$"""{"deviceId":"{{deviceId}}","commandResult":"DONE","uuid":"{{id}}","command":"PING"}""");
        batch.Answers.Add(answer);
        await gateway.Services.GetRequiredService<IIngestStore>().StoreAsync(batch, default);
        return answer;
    }

    private static void AddDevice(GatewayApp gateway, string id, string transport, string? tcpInstance) =>
        Assert.Equal(1, gateway.Storage.Execute($"""
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "TelemetryCount", "PendingCommands", "Transport", "TcpInstance")
            VALUES ('{id}', FALSE, {T0.UtcTicks}, 0, 0, '{transport}', {(tcpInstance is null ? "NULL" : $"'{tcpInstance}'")})
            ON CONFLICT ("Id") DO UPDATE SET "Transport" = excluded."Transport", "TcpInstance" = excluded."TcpInstance"
            """));

    private Task<GatewayApp> StartAsync() =>
        // No broker listens there: the gateway opens and migrates its database and leaves the commands alone.
        GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, provider: Provider);

    private static LaneLease LeaseAt(string owner, DateTimeOffset now) => new(owner, now, now + Lease);

    private static Command NewCommand(string deviceId, Guid? batchId = null) => new()
    {
        Id = Guid.CreateVersion7(),
        DeviceId = deviceId,
        BatchId = batchId,
        Name = "PING",
        TtlSeconds = 60,
        CreatedAt = T0,
        ExpiresAt = T0.AddSeconds(60),
    };
}
