using IotGateway.Commands;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Gateway;

// The dispatcher's scan (every 5 s) finds Pending every command a lane still holds. A lane that still has handed
// commands must not be sent back to the database for them: in a bulk command for 10,000 devices that was one read
// per device. Real Mosquitto and database; the command store is the gateway's own, watched from outside.
public sealed class SqliteLaneScanTests : LaneScanTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresLaneScanTests : LaneScanTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class LaneScanTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task AScanDoesNotSendALaneThatHoldsHandedCommandsBackToTheDatabase()
    {
        Requires.Mosquitto();
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        await using var broker = await MosquittoBroker.StartAsync();
        var watched = new WatchedStore();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, services: watched.Decorate, provider: Provider);
        await using var device = await GatewayEndToEndTests.SignInAsync(broker, gateway, "lane-1");

        // Two commands in one request: both handed to the lane. The first goes out; its Published mark is held, so
        // the lane waits there with the second still in hand.
        watched.HoldMarks();
        var readsBefore = watched.NextPendingReads("lane-1");
        IReadOnlyList<Command> queued;
        using (var scope = gateway.Services.CreateScope())
        {
            queued = await scope.ServiceProvider.GetRequiredService<CommandIntake>().QueueManyAsync(["lane-1", "lane-1"],
                new CommandRequestSpec("PING", Payload: null, TtlSeconds: 600, RequestedBy: "test"), batchId: null, default);
        }

        await device.WaitForMessageAsync(m => m.Payload.Contains(queued[0].Id.ToString(), StringComparison.Ordinal), Timeout);

        // A scan finds both Pending and runs lane-1's lane; the scan after it has begun once that Run is over.
        var scan = await Eventually.UntilAsync(() => Task.FromResult(watched.ScanThatFound("lane-1")), Timeout, "a scan finds lane-1's commands");
        await Eventually.UntilAsync(() => Task.FromResult(watched.Scans > scan), scans => scans, Timeout, "the next scan begins");

        watched.ReleaseMarks();
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued[1].Id.ToString(), StringComparison.Ordinal), Timeout);
        await Eventually.UntilAsync(() => Task.FromResult(gateway.Storage.Scalar(
                """SELECT COUNT(*) FROM "Commands" WHERE "DeviceId" = $d AND "Status" = 'Published'""", "lane-1")),
            published => published == 2, Timeout, "both commands are marked Published");

        Assert.Equal(readsBefore, watched.NextPendingReads("lane-1"));
    }

    // The gateway's own command store, counting the lanes' reads and the scans, and able to hold Published marks.
    private sealed class WatchedStore
    {
        private readonly Lock _sync = new();
        private readonly Dictionary<string, int> _reads = new(StringComparer.Ordinal);
        private readonly List<IReadOnlyList<string>> _scans = [];
        private TaskCompletionSource _marks = Released();

        public int Scans
        {
            get
            {
                lock (_sync)
                {
                    return _scans.Count;
                }
            }
        }

        public void Decorate(IServiceCollection services)
        {
            var original = services.Last(d => d.ServiceType == typeof(ICommandStore));
            services.Remove(original);
            services.AddSingleton<ICommandStore>(sp => new Store((ICommandStore)original.ImplementationFactory!(sp), this));
        }

        public int NextPendingReads(string deviceId)
        {
            lock (_sync)
            {
                return _reads.GetValueOrDefault(deviceId);
            }
        }

        // The number of the first scan that claimed the device's lane (1-based), or null.
        public int? ScanThatFound(string deviceId)
        {
            lock (_sync)
            {
                var index = _scans.FindIndex(s => s.Contains(deviceId));
                return index < 0 ? null : index + 1;
            }
        }

        public void HoldMarks()
        {
            lock (_sync)
            {
                _marks = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        public void ReleaseMarks()
        {
            lock (_sync)
            {
                _marks.TrySetResult();
            }
        }

        private static TaskCompletionSource Released()
        {
            var released = new TaskCompletionSource();
            released.SetResult();
            return released;
        }

        private sealed class Store(ICommandStore inner, WatchedStore watch) : ICommandStore
        {
            public Task<QueuedCommands> QueueAsync(IReadOnlyList<Command> commands, LaneLease lease, CancellationToken cancellationToken) =>
                inner.QueueAsync(commands, lease, cancellationToken);

            public Task<Command?> NextPendingAsync(string deviceId, DateTimeOffset now, CancellationToken cancellationToken)
            {
                lock (watch._sync)
                {
                    watch._reads[deviceId] = watch._reads.GetValueOrDefault(deviceId) + 1;
                }

                return inner.NextPendingAsync(deviceId, now, cancellationToken);
            }

            public Task<IReadOnlyList<string>> ClaimLanesAsync(IReadOnlyCollection<string> deviceIds, LaneLease lease, CancellationToken cancellationToken) =>
                inner.ClaimLanesAsync(deviceIds, lease, cancellationToken);

            public async Task<IReadOnlyList<string>> ClaimPendingLanesAsync(LaneLease lease, CancellationToken cancellationToken)
            {
                var claimed = await inner.ClaimPendingLanesAsync(lease, cancellationToken);
                lock (watch._sync)
                {
                    watch._scans.Add(claimed);
                }

                return claimed;
            }

            public Task ReleaseLanesAsync(string owner, CancellationToken cancellationToken) => inner.ReleaseLanesAsync(owner, cancellationToken);

            public async Task<IReadOnlyList<CommandChanged>> MarkPublishedAsync(IReadOnlyList<(Guid Id, DateTimeOffset At)> published,
                CancellationToken cancellationToken)
            {
                Task held;
                lock (watch._sync)
                {
                    held = watch._marks.Task;
                }

                await held.WaitAsync(cancellationToken);
                return await inner.MarkPublishedAsync(published, cancellationToken);
            }

            public Task<IReadOnlyList<CommandChanged>> ExpireDueAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
                inner.ExpireDueAsync(now, cancellationToken);

            public Task<CancelOutcome> CancelAsync(Guid id, string? cancelledBy, DateTimeOffset now, CancellationToken cancellationToken) =>
                inner.CancelAsync(id, cancelledBy, now, cancellationToken);

            public Task<IReadOnlyList<CommandChanged>> CancelBatchAsync(Guid batchId, string? cancelledBy, DateTimeOffset now,
                CancellationToken cancellationToken) =>
                inner.CancelBatchAsync(batchId, cancelledBy, now, cancellationToken);
        }
    }
}
