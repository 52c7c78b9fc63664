using System.Text.Json;
using System.Threading.Channels;
using IotGateway.Data;
using IotGateway.Events;
using IotGateway.Mqtt;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Commands;

// The outbox. A command is stored Pending before anything is sent; it is published at QoS 2 and marked Published
// once the broker has completed the flow. Commands reach it two ways:
// - handed over by CommandQueue the moment they are committed (the fast path: no database read, no polling);
// - read back from the database by a scan: at start, after a reconnect or a failed publish, and every PollInterval
//   (commands written by another process, or handed over while a scan was catching up).
// Each device has one lane that publishes its commands one after another in the order they were queued; lanes of
// different devices run concurrently, up to the connection's in-flight cap. A command is "in hand" from the moment
// a lane holds it until Published is committed, and a scan never picks up a command in hand, so none goes out twice.
public sealed partial class CommandDispatcher(
    MqttConnection connection,
    TopicLayout topics,
    IServiceScopeFactory scopes,
    DatabaseWriteGate writeGate,
    EventHub events,
    IOptions<CommandOptions> options,
    IOptions<MqttOptions> mqttOptions,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<CommandDispatcher> logger) : BackgroundService
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);
    private const int MaxMarksPerTransaction = 4096;

    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Channel<(Guid Id, DateTimeOffset At)> _published = Channel.CreateUnbounded<(Guid, DateTimeOffset)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly bool _mqtt5 = mqttOptions.Value.UsesMqtt5;
    private readonly int _scanSize = options.Value.DispatchBatchSize;

    // Guards everything below it. Held only for in-memory work, never across an await.
    private readonly Lock _sync = new();
    private readonly HashSet<Guid> _inHand = [];
    private readonly Dictionary<string, Lane> _lanes = new(StringComparer.Ordinal);

    // Commands handed over while not caught up wait here for the running scan, which merges them in queue order.
    private readonly List<Command> _handedOver = [];
    private bool _handedOverOverflowed;

    // Commands cancelled while a scan is running: it may have read them as Pending just before the cancel.
    private readonly HashSet<Guid> _withdrawn = [];

    // True when every Pending command is in hand: the fast path may then start lanes directly, as nothing older
    // for the same device can still be waiting in the database.
    private bool _caughtUp;
    private int _consecutiveFailures;

    // Bumped (under _sync) by every failed publish: a scan that saw one happen while it ran is not caught up.
    private long _failures;
    private DateTimeOffset _retryAfter;

    // Taken by a scan from before its query until its results are in hand, and by the marker before it lets go
    // of commands it has marked: a scan therefore never reads a command as Pending that is no longer in hand.
    private readonly SemaphoreSlim _scanGate = new(1, 1);

    // Where the next page of a scan starts (0: from the beginning). A full page is often all in hand still (its
    // lanes are publishing, its Published marks not yet committed): reading past it, instead of the same page
    // again at once, keeps a large backlog from spinning the scan until the marks catch up.
    private long _scanAfter;
    private long _failuresAtPassStart; // _failures when the first page of the current pass was read
    private CancellationToken _stopping = new(canceled: true);

    private void Wake() => _wake.Writer.TryWrite(true);

    // Called by CommandQueue inside the write gate, right after the commit, so hand-overs arrive in queue order.
    public void HandOver(IReadOnlyList<Command> committed)
    {
        lock (_sync)
        {
            if (_caughtUp)
            {
                foreach (var command in committed)
                {
                    TakeInHand(command);
                }

                return;
            }

            if (_handedOver.Count + committed.Count <= _scanSize)
            {
                _handedOver.AddRange(committed);
            }
            else
            {
                // Too many to hold: the scans read them from the database instead.
                _handedOver.Clear();
                _handedOverOverflowed = true;
            }
        }

        Wake();
    }

    // Called inside the write gate right after a cancel commits: a cancelled command that no lane has started is
    // not sent, even if a scan read it as Pending just before. (One already being published goes out; its answer
    // is then ignored.)
    public void Withdraw(Guid id)
    {
        lock (_sync)
        {
            _handedOver.RemoveAll(c => c.Id == id);
            if (_lanes.Values.Any(lane => lane.Remove(id)))
            {
                _inHand.Remove(id);
            }
            else if (!_inHand.Contains(id))
            {
                _withdrawn.Add(id);
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _stopping = stoppingToken;
        var marking = MarkPublishedLoopAsync();
        try
        {
            await ScanLoopAsync(stoppingToken);
        }
        finally
        {
            // Lanes see the cancellation at once; what they published is still marked before we return.
            Task[] lanes;
            lock (_sync)
            {
                _caughtUp = false;
                lanes = _lanes.Values.Select(l => l.Running).ToArray();
            }

            await Task.WhenAll(lanes);
            _published.Writer.TryComplete();
            await marking;
        }
    }

    private async Task ScanLoopAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await connection.WaitUntilConnectedAsync(stoppingToken);
                DateTimeOffset retryAfter;
                lock (_sync)
                {
                    retryAfter = _retryAfter; // 16 bytes, written by lanes: never read torn
                }

                var pause = retryAfter - time.GetUtcNow();
                if (pause > TimeSpan.Zero)
                {
                    // A broker that keeps refusing publishes (an ACL, a quota) is not hammered.
                    await Task.Delay(pause, time, stoppingToken);
                    continue;
                }

                if (await ScanAsync(stoppingToken))
                {
                    continue;
                }

                using var poll = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                poll.CancelAfter(PollInterval);
                await _wake.Reader.ReadAsync(poll.Token);
            }
            catch (OperationCanceledException)
            {
                // Poll interval elapsed, or stopping.
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogScanFailed(ex.GetBaseException().Message);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    // Reads Pending commands that are not in hand, in queue order, and gives them to their lanes. Returns true
    // when there may be more to read at once.
    private async Task<bool> ScanAsync(CancellationToken cancellationToken)
    {
        await _scanGate.WaitAsync(cancellationToken);
        try
        {
            long failuresBefore;
            lock (_sync)
            {
                // Whatever was handed over or cancelled before this point is committed, so the query below sees it.
                // A publish that fails during any page of a pass drops a command the pass may have read already.
                if (_scanAfter == 0)
                {
                    _failuresAtPassStart = _failures;
                }

                failuresBefore = _failuresAtPassStart;
                _handedOver.Clear();
                _handedOverOverflowed = false;
                _withdrawn.Clear();
            }

            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
            var now = time.GetUtcNow();
            var after = _scanAfter;
            var pending = await db.Commands.AsNoTracking()
                .Where(c => c.Status == CommandStatus.Pending && c.ExpiresAt > now && c.Sequence > after)
                .OrderBy(c => c.Sequence)
                .Take(_scanSize)
                .ToListAsync(cancellationToken);

            lock (_sync)
            {
                var more = pending.Count == _scanSize || _handedOverOverflowed;
                // Commands committed after this read have larger sequences, so paging on misses none of them.
                _scanAfter = more && pending.Count > 0 ? pending[^1].Sequence : 0;
                var found = more
                    ? pending
                    : pending.Concat(_handedOver).DistinctBy(c => c.Id).OrderBy(c => c.Sequence).ToList();
                foreach (var command in found)
                {
                    TakeInHand(command);
                }

                _handedOver.Clear();
                // A publish that failed meanwhile dropped commands the query may not have seen: not caught up.
                _caughtUp = !more && connection.IsConnected && _failures == failuresBefore;
                return more;
            }
        }
        finally
        {
            _scanGate.Release();
        }
    }

    private void TakeInHand(Command command)
    {
        if (_withdrawn.Contains(command.Id) || !_inHand.Add(command.Id))
        {
            return;
        }

        if (!_lanes.TryGetValue(command.DeviceId, out var lane))
        {
            lane = new Lane();
            _lanes[command.DeviceId] = lane;
            lane.Commands.Enqueue(command);
            lane.Running = Task.Run(() => RunLaneAsync(command.DeviceId, lane));
            return;
        }

        lane.Commands.Enqueue(command);
    }

    private async Task RunLaneAsync(string deviceId, Lane lane)
    {
        while (true)
        {
            Command command;
            lock (_sync)
            {
                if (!lane.Commands.TryDequeue(out command!))
                {
                    _lanes.Remove(deviceId);
                    return;
                }
            }

            var now = time.GetUtcNow();
            if (command.ExpiresAt <= now)
            {
                // The expiry sweep marks it; sending it now would only make the device act on a stale command.
                Release(command.Id);
                continue;
            }

            if (await PublishAsync(command, now, _stopping))
            {
                Volatile.Write(ref _consecutiveFailures, 0);
                _published.Writer.TryWrite((command.Id, time.GetUtcNow()));
                continue;
            }

            // This command and the rest of the lane stay Pending and go out after the next scan, still in order.
            lock (_sync)
            {
                _caughtUp = false;
                _failures++;
                _inHand.Remove(command.Id);
                while (lane.Commands.TryDequeue(out var rest))
                {
                    _inHand.Remove(rest.Id);
                }

                _lanes.Remove(deviceId);
                var failures = ++_consecutiveFailures;
                _retryAfter = time.GetUtcNow() + Backoff.Delay(TimeSpan.FromMilliseconds(250), PollInterval, failures - 1);
            }

            Wake();
            return;
        }
    }

    private void Release(Guid id)
    {
        lock (_sync)
        {
            _inHand.Remove(id);
        }
    }

    // Marks published commands in batches, each command with the time its own QoS 2 flow completed, off the
    // publishing path. Only then are they let go, so a scan cannot read them as Pending and send them again.
    private async Task MarkPublishedLoopAsync()
    {
        var batch = new List<(Guid Id, DateTimeOffset At)>();
        while (await _published.Reader.WaitToReadAsync())
        {
            while (batch.Count < MaxMarksPerTransaction && _published.Reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            await MarkWithRetryAsync(batch);
            await _scanGate.WaitAsync();
            try
            {
                lock (_sync)
                {
                    foreach (var (id, _) in batch)
                    {
                        _inHand.Remove(id);
                    }
                }
            }
            finally
            {
                _scanGate.Release();
            }

            batch.Clear();
        }
    }

    private async Task MarkWithRetryAsync(List<(Guid Id, DateTimeOffset At)> batch)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await MarkPublishedAsync(batch);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Whatever it is, keep trying: these commands stay in hand (not sent again) until they are marked.
                LogMarkFailed(batch.Count, attempt, ex.GetBaseException().Message);
                if (_stopping.IsCancellationRequested && attempt >= 3)
                {
                    // They stay Pending and are sent once more after the restart; devices see the same uuid twice.
                    return;
                }

                await Task.Delay(Backoff.Delay(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5), attempt), time);
            }
        }
    }

    // A device may already have answered (fast devices answer before this update runs) or an operator cancelled
    // the command: then only PublishedAt is filled in.
    private async Task MarkPublishedAsync(List<(Guid Id, DateTimeOffset At)> published)
    {
        var transitions = new List<(Guid Id, string DeviceId, DateTimeOffset At)>();
        await using (var write = await WriteTransaction.BeginAsync(writeGate, CancellationToken.None))
        {
            var update = write.Prepare("""
                UPDATE "Commands" SET "PublishedAt" = $at,
                    "Status" = CASE WHEN "Status" = 'Pending' THEN 'Published' ELSE "Status" END
                WHERE "Id" = $id AND "PublishedAt" IS NULL
                RETURNING "Status", "DeviceId"
                """, "$id", "$at");
            foreach (var command in published)
            {
                update.Parameters[0].Value = command.Id.ToString();
                update.Parameters[1].Value = command.At.UtcTicks;
                using var reader = update.ExecuteReader();
                if (reader.Read() && reader.GetString(0) == nameof(CommandStatus.Published))
                {
                    transitions.Add((command.Id, reader.GetString(1), command.At));
                }
            }

            write.Commit();
        }

        metrics.CommandTransition(CommandStatus.Published, transitions.Count);
        foreach (var (id, deviceId, at) in transitions)
        {
            if (events.Wants(deviceId))
            {
                events.Publish(ServerEvent.Command(deviceId, id, CommandStatus.Published, at));
            }
        }
    }

    private async Task<bool> PublishAsync(Command command, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var builder = new MqttApplicationMessageBuilder()
            .WithTopic(topics.CommandRequest(command.DeviceId))
            .WithPayload(RequestPayload(command))
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce);
        if (_mqtt5)
        {
            // The broker drops it when the TTL runs out, so a device that returns late does not act on it.
            // Rounded down: the broker never keeps it longer than the gateway waits for it (1 s at the least).
            var remaining = (uint)Math.Max(1, Math.Floor((command.ExpiresAt - now).TotalSeconds));
            builder.WithMessageExpiryInterval(remaining).WithContentType("application/json");
        }

        try
        {
            var result = await connection.PublishAsync(builder.Build(), cancellationToken);
            if (result.ReasonCode == MqttClientPublishReasonCode.NoMatchingSubscribers)
            {
                LogNoSubscriber(command.Id, command.DeviceId);
                return true;
            }

            if (!result.IsSuccess)
            {
                LogPublishRefused(command.Id, command.DeviceId, result.ReasonCode, result.ReasonString);
                return false;
            }

            LogPublished(command.Id, command.DeviceId, command.Name);
            return true;
        }
        catch (Exception ex)
        {
            // Not connected, the connection dropped mid-flow, or stopping: it stays Pending and goes out later.
            if (!cancellationToken.IsCancellationRequested)
            {
                LogPublishFailed(command.Id, command.DeviceId, ex.GetBaseException().Message);
            }

            return false;
        }
    }

    internal static byte[] RequestPayload(Command command)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("uuid", command.Id.ToString());
            json.WriteString("command", command.Name);
            if (command.Payload is not null)
            {
                json.WritePropertyName("payload");
                json.WriteRawValue(command.Payload, skipInputValidation: true);
            }

            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    public override void Dispose()
    {
        _scanGate.Dispose();
        base.Dispose();
    }

    // One device's commands in queue order; Running is the task publishing them.
    private sealed class Lane
    {
        public Queue<Command> Commands { get; } = new();
        public Task Running { get; set; } = Task.CompletedTask;

        public bool Remove(Guid id)
        {
            var before = Commands.Count;
            var kept = Commands.Where(c => c.Id != id).ToList();
            if (kept.Count == before)
            {
                return false;
            }

            Commands.Clear();
            foreach (var command in kept)
            {
                Commands.Enqueue(command);
            }

            return true;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Command {CommandId} published to {DeviceId}: {Command}")]
    private partial void LogPublished(Guid commandId, string deviceId, string command);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Command {CommandId} published but no session subscribes to {DeviceId}'s command topic; it expires unless the device subscribes")]
    private partial void LogNoSubscriber(Guid commandId, string deviceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broker refused command {CommandId} for {DeviceId}: {ReasonCode} {ReasonString}")]
    private partial void LogPublishRefused(Guid commandId, string deviceId, MqttClientPublishReasonCode reasonCode, string? reasonString);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command {CommandId} for {DeviceId} stays Pending: {Reason}")]
    private partial void LogPublishFailed(Guid commandId, string deviceId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Reading the outbox failed; retrying: {Reason}")]
    private partial void LogScanFailed(string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot mark {Count} commands Published (attempt {Attempt}); they are not sent again meanwhile: {Reason}")]
    private partial void LogMarkFailed(int count, int attempt, string reason);
}
