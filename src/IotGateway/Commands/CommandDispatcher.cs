using IotGateway.Mqtt;
using IotGateway.Protocol;

namespace IotGateway.Commands;

// Publishes Pending commands. Each device has one lane, in one instance at a time (the instance that holds the
// device's lease in CommandLanes): the lane takes the device's oldest Pending command from the database, sends it,
// waits until it is marked Published, and takes the next; when there is none it ends. So a device's commands go out
// in queue order, and each once: the next read cannot see a command that went out, and a lease keeps every other
// instance off the device. (An instance that stalls past its lease may have a command sent a second time by the
// instance that takes over: devices ignore a uuid they have executed.)
//
// Lanes start three ways: the request that queued commands claims their lanes and starts them at once; an instance
// that queued commands for devices another instance holds tells that one (cluster signals); and a scan, at start,
// after a reconnect or a failure, and every few seconds, claims the lanes of devices with Pending commands that
// nobody holds (catch-up after an outage, takeover after an instance died).
//
// Commands handed to a lane wait in memory while every publishing slot is busy. One that finishes meanwhile (cancelled,
// expired, answered; here or on another instance: CommandCompletion) is dropped from its lane, so it is never sent. A
// finish that commits while the lane is already reading or sending that very command races the publish like any cancel
// of a command about to go out: it ends Cancelled with its PublishedAt, as a cancelled Published command does.
public sealed partial class CommandDispatcher(
    ICommandStore store,
    ICommandTransport transport,
    PublishedMarks marks,
    CommandCompletion completion,
    MqttConnection connection,
    DatabaseStartup database,
    IClusterSignals signals,
    IOptions<CommandOptions> options,
    IOptions<MqttOptions> mqttOptions,
    TimeProvider time,
    ILogger<CommandDispatcher> logger) : BackgroundService
{
    private static readonly TimeSpan ScanInterval = TimeSpan.FromSeconds(5);

    private readonly TimeSpan _leaseDuration = TimeSpan.FromSeconds(options.Value.LeaseSeconds);
    private readonly SemaphoreSlim _publishing = new(options.Value.MaxConcurrentLanes);
    private readonly SemaphoreSlim _wake = new(0, 1);

    // Guards the lanes and _stopping; held only for in-memory work, never across an await.
    private readonly Lock _sync = new();
    private readonly Dictionary<string, Lane> _lanes = new(StringComparer.Ordinal);

    // Every command handed to a lane and not yet taken by it, with that lane. A command no longer here is skipped
    // when its lane reaches it: dropping one is O(1) whatever the lanes hold.
    private readonly Dictionary<Guid, Lane> _handed = [];
    private CancellationToken _stopping = new(canceled: true);

    private int _failures;
    private DateTimeOffset _retryAfter;

    // This instance, as lane owner: its stable MQTT client id.
    public string Owner { get; } = mqttOptions.Value.ClientId;

    public LaneLease NewLease()
    {
        var now = time.GetUtcNow();
        return new LaneLease(Owner, now, now + _leaseDuration);
    }

    // Runs the lanes of devices this instance holds (leaseUntil known) or was told it holds (null: checked first).
    // A lane already running reads the database again before it ends.
    public void Run(IEnumerable<string> deviceIds, DateTimeOffset? leaseUntil) => Run(deviceIds, leaseUntil, [], null);

    // The same for commands this instance just queued and claimed the lanes of: a device with nothing older Pending
    // (not in `behind`) gets its new commands handed to its lane, which publishes them without reading them back.
    public void Run(IEnumerable<string> deviceIds, DateTimeOffset? leaseUntil, IReadOnlyList<Command> queued, IReadOnlySet<string>? behind) =>
        Run(deviceIds, leaseUntil, queued, behind, scanned: false);

    // `scanned`: the devices come from the scan, which finds Pending what the lanes still hold (handed commands, and the
    // one whose Published mark is being written). A lane that still holds handed commands is not told to read them
    // back: in a bulk command that was one read per device. Anything else the scan saw, it finds again once the lane
    // has ended.
    private void Run(IEnumerable<string> deviceIds, DateTimeOffset? leaseUntil, IReadOnlyList<Command> queued, IReadOnlySet<string>? behind,
        bool scanned)
    {
        var handed = queued.Count == 0 ? null : queued.ToLookup(c => c.DeviceId, StringComparer.Ordinal);
        lock (_sync)
        {
            if (_stopping.IsCancellationRequested)
            {
                // Not started yet, or stopping: the first scan (or the next start's) finds them.
                return;
            }

            foreach (var deviceId in deviceIds)
            {
                var hand = handed is not null && behind?.Contains(deviceId) == false;
                if (_lanes.TryGetValue(deviceId, out var lane))
                {
                    lane.Runs++;
                    if (hand)
                    {
                        Hand(lane, handed![deviceId]);
                    }
                    else if (!scanned || lane.Handed.Count == 0)
                    {
                        lane.Again = true;
                    }

                    if (leaseUntil > lane.LeaseUntil)
                    {
                        lane.LeaseUntil = leaseUntil.Value;
                    }

                    continue;
                }

                lane = new Lane(leaseUntil ?? DateTimeOffset.MinValue) { Again = !hand };
                if (hand)
                {
                    Hand(lane, handed![deviceId]);
                }

                _lanes[deviceId] = lane;
                var stopping = _stopping;
                lane.Running = Task.Run(() => RunLaneAsync(deviceId, lane, stopping));
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await database.Ready.WaitAsync(stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (stoppingToken.IsCancellationRequested)
        {
            return;
        }

        // Before any lane can exist: no finish goes unheard by the lanes.
        completion.CommandsFinished += OnFinished;
        lock (_sync)
        {
            _stopping = stoppingToken;
        }

        signals.QueuedForOwner += OnQueued;
        signals.Resynchronise += OnResynchronise;
        transport.DeviceReachable += OnReachable;
        var marking = marks.RunAsync(stoppingToken);
        try
        {
            await ScanLoopAsync(stoppingToken);
        }
        finally
        {
            signals.QueuedForOwner -= OnQueued;
            signals.Resynchronise -= OnResynchronise;
            completion.CommandsFinished -= OnFinished;
            transport.DeviceReachable -= OnReachable;
            // Lanes see the cancellation at once; what they published is still marked before we let go of them.
            Task[] lanes;
            lock (_sync)
            {
                lanes = [.. _lanes.Values.Select(l => l.Running)];
            }

            await Task.WhenAll(lanes).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            marks.Complete();
            await marking;
            await ReleaseLanesAsync();
        }
    }

    private async Task ScanLoopAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await connection.WaitUntilConnectedAsync(stoppingToken);
                var pause = Volatile.Read(ref _failures) == 0 ? TimeSpan.Zero : ReadRetryAfter() - time.GetUtcNow();
                if (pause > TimeSpan.Zero)
                {
                    // A broker that keeps refusing publishes (an ACL, a quota) is not hammered.
                    await Task.Delay(pause, time, stoppingToken);
                }

                var lease = NewLease();
                Run(await store.ClaimPendingLanesAsync(lease, stoppingToken), lease.Until, [], null, scanned: true);
                await _wake.WaitAsync(ScanInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogScanFailed(ex.GetBaseException().Message);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private async Task RunLaneAsync(string deviceId, Lane lane, CancellationToken stopping)
    {
        try
        {
            await _publishing.WaitAsync(stopping);
            try
            {
                await PublishInOrderAsync(deviceId, lane, stopping);
            }
            finally
            {
                _publishing.Release();
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            // The database failed under the lane: its commands stay Pending for the next scan.
            LogLaneFailed(deviceId, ex.GetBaseException().Message);
            Failed();
        }
        finally
        {
            lock (_sync)
            {
                // What it still held stays Pending in the database, for the lane that takes the device next.
                ForgetHanded(lane, lane.Handed.Count);
                if (_lanes.GetValueOrDefault(deviceId) == lane)
                {
                    _lanes.Remove(deviceId);
                }
            }
        }
    }

    // The lane's loop: one command at a time, oldest first, each marked Published before the next is read.
    private async Task PublishInOrderAsync(string deviceId, Lane lane, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            var now = time.GetUtcNow();
            if (!await HoldsLeaseAsync(deviceId, lane, now, stopping))
            {
                LogLeaseElsewhere(deviceId);
                return;
            }

            // Handed commands first (nothing older was Pending when they were queued); the database when told
            // something may have been queued meanwhile (Again) or at the start of a lane the scan or a signal began.
            Command? command = null;
            var handedBeforeRead = 0;
            lock (_sync)
            {
                if (lane.Again)
                {
                    lane.Again = false;
                    handedBeforeRead = lane.Handed.Count;
                }
                else
                {
                    command = TakeHanded(lane);
                    if (command is null)
                    {
                        _lanes.Remove(deviceId);
                        return;
                    }
                }
            }

            if (command is null)
            {
                command = await store.NextPendingAsync(deviceId, now, stopping);
                lock (_sync)
                {
                    if (command is null)
                    {
                        // Handed commands the read did not find were cancelled or expired meanwhile; those handed
                        // during the read (committed after it looked) are still to send.
                        ForgetHanded(lane, handedBeforeRead);
                        continue;
                    }

                    // Read from the database: its handed copy is spent, and there may be more behind it, so the lane
                    // reads until it finds none.
                    Forget(lane, command.Id);
                    lane.Again = true;
                }
            }

            if (command.ExpiresAt <= now)
            {
                // The expiry sweep marks it; sending it now would only make the device act on a stale command.
                continue;
            }

            int runs;
            lock (_sync)
            {
                runs = lane.Runs;
            }

            switch (await transport.SendAsync(command, now, stopping))
            {
                case SendResult.Sent:
                    Volatile.Write(ref _failures, 0);
                    await marks.MarkAsync(command.Id, time.GetUtcNow());
                    break;
                case SendResult.Unavailable:
                    // Not connected: the scan after the reconnect takes the device up again.
                    Wake();
                    return;
                case SendResult.Away:
                    // The device cannot take it now: the transport says when it can. If it said so while this lane was
                    // sending (Run found the lane still here), the lane goes on instead of ending on that news.
                    lock (_sync)
                    {
                        if (lane.Runs == runs)
                        {
                            _lanes.Remove(deviceId);
                            return;
                        }

                        lane.Again = true;
                    }

                    continue;
                default:
                    Failed();
                    return;
            }
        }
    }

    // The lease is renewed when half of it is gone; a lane whose device another instance took over stops.
    private async Task<bool> HoldsLeaseAsync(string deviceId, Lane lane, DateTimeOffset now, CancellationToken stopping)
    {
        DateTimeOffset until;
        lock (_sync)
        {
            until = lane.LeaseUntil;
        }

        if (until - now > _leaseDuration / 2)
        {
            return true;
        }

        var lease = new LaneLease(Owner, now, now + _leaseDuration);
        if ((await store.ClaimLanesAsync([deviceId], lease, stopping)).Count == 0)
        {
            return false;
        }

        lock (_sync)
        {
            if (lease.Until > lane.LeaseUntil)
            {
                lane.LeaseUntil = lease.Until;
            }
        }

        return true;
    }

    private void OnReachable(string deviceId) => Run([deviceId], leaseUntil: null);

    // Called under _sync.
    private void Hand(Lane lane, IEnumerable<Command> commands)
    {
        foreach (var command in commands)
        {
            lane.Handed.Enqueue(command);
            _handed[command.Id] = lane;
        }
    }

    // The lane's oldest handed command still to send, or null. Called under _sync.
    private Command? TakeHanded(Lane lane)
    {
        while (lane.Handed.TryDequeue(out var command))
        {
            if (Forget(lane, command.Id))
            {
                return command;
            }
        }

        return null;
    }

    // The lane's `count` oldest handed commands. Called under _sync.
    private void ForgetHanded(Lane lane, int count)
    {
        for (var i = 0; i < count && lane.Handed.TryDequeue(out var command); i++)
        {
            Forget(lane, command.Id);
        }
    }

    // False when the command was dropped from this lane already. Called under _sync.
    private bool Forget(Lane lane, Guid id) => _handed.TryGetValue(id, out var holder) && holder == lane && _handed.Remove(id);

    private void OnFinished(IReadOnlyCollection<Guid> ids)
    {
        lock (_sync)
        {
            foreach (var id in ids)
            {
                _handed.Remove(id);
            }
        }
    }

    // Finishes from other instances may have been missed: every lane reads the database before it sends anything more.
    private void OnResynchronise()
    {
        lock (_sync)
        {
            foreach (var lane in _lanes.Values)
            {
                lane.Again = true;
            }
        }

        Wake();
    }

    private void OnQueued(string owner, IReadOnlyList<string> deviceIds)
    {
        if (owner == Owner)
        {
            Run(deviceIds, leaseUntil: null);
        }
    }

    private void Failed()
    {
        var failures = Interlocked.Increment(ref _failures);
        lock (_sync)
        {
            _retryAfter = time.GetUtcNow() + Backoff.Delay(TimeSpan.FromMilliseconds(250), ScanInterval, failures - 1);
        }

        Wake();
    }

    private DateTimeOffset ReadRetryAfter()
    {
        lock (_sync)
        {
            return _retryAfter;
        }
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already woken.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    // A clean stop hands this instance's devices to the others at once, instead of after the lease runs out.
    private async Task ReleaseLanesAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await store.ReleaseLanesAsync(Owner, timeout.Token);
        }
        catch (Exception ex)
        {
            LogReleaseFailed(ex.GetBaseException().Message);
        }
    }

    public override void Dispose()
    {
        _publishing.Dispose();
        _wake.Dispose();
        base.Dispose();
    }

    private sealed class Lane(DateTimeOffset leaseUntil)
    {
        public DateTimeOffset LeaseUntil { get; set; } = leaseUntil;

        // Set when commands may have been queued since the lane's last read: it reads again before it ends.
        public bool Again { get; set; }

        // Commands queued by this instance with nothing older Pending for the device, in queue order; those no longer
        // in _handed (finished, or read from the database meanwhile) are skipped.
        public Queue<Command> Handed { get; } = new();

        public Task Running { get; set; } = Task.CompletedTask;

        // How often Run found the lane running (told to run it again).
        public int Runs { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Reading the outbox failed; retrying: {Reason}")]
    private partial void LogScanFailed(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing {DeviceId}'s commands stopped; they stay Pending for the next scan: {Reason}")]
    private partial void LogLaneFailed(string deviceId, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Device {DeviceId}'s commands are published by another instance now")]
    private partial void LogLeaseElsewhere(string deviceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not hand this instance's command lanes over at shutdown; other instances take them when the leases run out: {Reason}")]
    private partial void LogReleaseFailed(string reason);
}
