using IotGateway.Commands;
using IotGateway.Data;
using IotGateway.Tests.Gateway;
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

    private Task<GatewayApp> StartAsync() =>
        // No broker listens there: the gateway opens and migrates its database and leaves the commands alone.
        GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, provider: Provider);

    private static LaneLease LeaseAt(string owner, DateTimeOffset now) => new(owner, now, now + Lease);

    private static Command NewCommand(string deviceId) => new()
    {
        Id = Guid.CreateVersion7(),
        DeviceId = deviceId,
        Name = "PING",
        TtlSeconds = 60,
        CreatedAt = T0,
        ExpiresAt = T0.AddSeconds(60),
    };
}
