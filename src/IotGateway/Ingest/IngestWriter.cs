using IotGateway.Observability;
using IotGateway.Protocol;
using System.Threading.Channels;
using IotGateway.Commands;
using IotGateway.Devices;
using IotGateway.Events;
using IotGateway.Mqtt;

namespace IotGateway.Ingest;

public sealed record IngestState(bool Healthy, string? LastError);

// The one writer: drains the ingest queue in batches, stores each batch in one transaction, and only then
// acknowledges its messages, in arrival order. A batch that fails for the database's reasons (a lock, a full disk,
// a file that is gone) is retried with its messages still unacked, so the broker keeps them whatever happens to this
// process; a batch that fails for any other reason is split until the one message that cannot be stored is found,
// rejected and acknowledged, so no message can hold up the others.
public sealed partial class IngestWriter(
    IngestQueue queue,
    MqttConnection connection,
    DeviceRegistry registry,
    CommandTransitions transitions,
    EventHub events,
    IIngestStore store,
    DatabaseFile databaseFile,
    IngestProgress progress,
    IOptions<IngestOptions> options,
    IOptions<MqttOptions> mqttOptions,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<IngestWriter> logger) : BackgroundService
{
    private const int AcksPerSend = 512;

    private readonly IngestOptions _options = options.Value;

    // This gateway instance: it holds the connections of the TCP devices it signs in.
    private readonly string _instance = mqttOptions.Value.ClientId;

    public IngestState State { get; private set; } = new(true, null);

    // Stops before the MQTT connection (registered after it). In a shared-subscription group the instance first leaves
    // the group, so that what the broker had sent it before then is all there is to flush.
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await connection.LeaveSharedGroupAsync(cancellationToken);
        await base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Acks leave from their own loop so the next batch is stored while this one's acks are written;
        // one loop keeps them in commit order, which is arrival order.
        var committed = Channel.CreateBounded<List<InboundMessage>>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
        var acknowledging = AcknowledgeCommittedAsync(committed.Reader);
        try
        {
            await WriteBatchesAsync(committed.Writer, stoppingToken);
        }
        finally
        {
            committed.Writer.TryComplete();
            await acknowledging;
        }
    }

    private async Task WriteBatchesAsync(ChannelWriter<List<InboundMessage>> committed, CancellationToken stoppingToken)
    {
        try
        {
            await WriteBatchesCoreAsync(committed, stoppingToken);
        }
        finally
        {
            progress.Stopped();
        }
    }

    private async Task WriteBatchesCoreAsync(ChannelWriter<List<InboundMessage>> committed, CancellationToken stoppingToken)
    {
        // At shutdown, what was queued then is flushed; what arrives later stays unacknowledged for next time,
        // so a steady stream of devices cannot keep the process from exiting.
        int? flushLeft = null;
        while (true)
        {
            if (stoppingToken.IsCancellationRequested)
            {
                flushLeft ??= queue.Count;
                if (flushLeft <= 0)
                {
                    return;
                }
            }

            if (!queue.Reader.TryPeek(out _))
            {
                if (stoppingToken.IsCancellationRequested)
                {
                    return;
                }

                progress.Waiting();
                try
                {
                    await queue.Reader.WaitToReadAsync(stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    // Stopping: fall through and flush what is already queued before the connection closes.
                    continue;
                }
            }

            var limit = Math.Min(_options.MaxBatchSize, flushLeft ?? int.MaxValue);
            var batch = new List<InboundMessage>(Math.Min(limit, queue.Count + 1));
            while (batch.Count < limit && queue.Reader.TryRead(out var message))
            {
                batch.Add(message);
            }

            flushLeft -= batch.Count;
            progress.Took(batch.Count);
            if (!await StoreOrSplitAsync(batch, committed, stoppingToken))
            {
                return;
            }

            progress.Done();
        }
    }

    // All acks of a batch are started in arrival order without waiting for each to be written: MQTTnet's
    // send lock is first come, first served, so they leave in that order. Held in groups, they leave in one send
    // per group instead of one each; a group is small enough not to hold up a command publish for long.
    private async Task AcknowledgeCommittedAsync(ChannelReader<List<InboundMessage>> committed)
    {
        await foreach (var batch in committed.ReadAllAsync())
        {
            var pending = new Task[batch.Count];
            for (var start = 0; start < batch.Count; start += AcksPerSend)
            {
                using var hold = connection.HoldWrites();
                for (var i = start; i < Math.Min(batch.Count, start + AcksPerSend); i++)
                {
                    pending[i] = connection.AcknowledgeAsync(batch[i], CancellationToken.None);
                }
            }

            await Task.WhenAll(pending);
        }
    }

    // Stores the batch and hands it on for acknowledgement; false only when stopping with it still unstored.
    private async Task<bool> StoreOrSplitAsync(List<InboundMessage> batch, ChannelWriter<List<InboundMessage>> committed, CancellationToken stoppingToken)
    {
        var attempt = 0;
        while (true)
        {
            BatchOutcome outcome;
            try
            {
                outcome = await StoreAsync(batch);
            }
            catch (Exception ex) when (DatabaseErrors.IsTransient(ex))
            {
                // Locked or full database, or its file gone: keep the batch unacknowledged and try again; readiness reports it.
                attempt++;
                LogStorageFailed(batch.Count, attempt, ex.GetBaseException().Message);
                State = new IngestState(false, $"cannot store messages: {ex.GetBaseException().Message}");
                if (stoppingToken.IsCancellationRequested && attempt >= 3)
                {
                    // Giving up at shutdown is safe: nothing was acknowledged, the broker redelivers.
                    return false;
                }

                var delay = Backoff.Delay(TimeSpan.FromSeconds(0.1), TimeSpan.FromSeconds(_options.RetryMaxDelaySeconds), attempt);
                try
                {
                    await Task.Delay(delay, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                }

                continue;
            }
            catch (Exception ex)
            {
                // Not the database's trouble but some message's: the halves are stored on their own, down to that message.
                return await SplitAsync(batch, ex, committed, stoppingToken);
            }

            if (!State.Healthy)
            {
                LogStorageRecovered(attempt);
                State = new IngestState(true, null);
            }

            progress.Stored();
            try
            {
                Publish(outcome, batch);
            }
            catch (Exception ex)
            {
                // Stored is stored: a failure to tell the registry, metrics or log must not replay the batch.
                LogPublishFailed(ex);
            }

            await committed.WriteAsync(batch, CancellationToken.None);
            return true;
        }
    }

    private async Task<bool> SplitAsync(List<InboundMessage> batch, Exception error, ChannelWriter<List<InboundMessage>> committed, CancellationToken stoppingToken)
    {
        var reason = LogText.Printable(error.GetBaseException().Message, 200);
        if (batch.Count == 1)
        {
            var message = batch[0];
            metrics.MessageRejected("refused-by-database");
            LogRejected("refused-by-database",
                $"message on '{LogText.Printable(message.Topic)}' cannot be stored ({error.GetBaseException().GetType().Name}: {reason})");
            await committed.WriteAsync(batch, CancellationToken.None);
            progress.Stored();
            return true;
        }

        LogSplitting(batch.Count, reason);
        var half = batch.Count / 2;
        return await StoreOrSplitAsync(batch[..half], committed, stoppingToken)
            && await StoreOrSplitAsync(batch[half..], committed, stoppingToken);
    }

    // One transaction. The file is checked before it (nothing is written into a file that is no longer the
    // database's) and after the commit (nothing committed into one is acknowledged).
    private async Task<BatchOutcome> StoreAsync(IReadOnlyList<InboundMessage> batch)
    {
        databaseFile.ThrowIfMoved();
        var outcome = new BatchOutcome(events);
        var writes = new IngestBatch(time.GetUtcNow());
        foreach (var message in batch)
        {
            Classify(message, writes, outcome);
        }

        await store.StoreAsync(writes, CancellationToken.None);
        databaseFile.ThrowIfMoved();
        outcome.Count(writes);
        return outcome;
    }

    // What the batch writes (provider-neutral); the store fills in what became of each reading and answer.
    private void Classify(InboundMessage message, IngestBatch writes, BatchOutcome outcome)
    {
        if (message.Kind is { } kind)
        {
            outcome.Received[(int)kind]++;
        }

        if (message.Rejection is { } rejection)
        {
            outcome.Reject(rejection.Reason, rejection.Detail);
            return;
        }

        var deviceId = message.DeviceId!;
        switch (message.Kind)
        {
            case TopicKind.Data:
                var payload = message.Reading!.Value;
                if (payload.Format != PayloadFormat.Json)
                {
                    outcome.NonJson.Add((deviceId, payload.Format));
                }

                writes.Readings.Add(new ReadingWrite(deviceId, message.ReceivedAt, message.Topic, payload, message.MessageKey));
                writes.Seen(deviceId, message.ReceivedAt);
                break;
            case TopicKind.Register:
                if (message.SignedIn is not { } signedIn)
                {
                    // A cleared retained message, not a presence change.
                    return;
                }

                // A retained replay or a Last Will is not the device being seen.
                var seenAt = signedIn && !message.Retain ? message.ReceivedAt : (DateTimeOffset?)null;
                writes.Presence.Add(message.IsTcp
                    ? new PresenceWrite(deviceId, signedIn, message.ReceivedAt, seenAt, DeviceTransports.Tcp, _instance)
                    : new PresenceWrite(deviceId, signedIn, message.ReceivedAt, seenAt, signedIn ? DeviceTransports.Mqtt : null));
                break;
            case TopicKind.CommandResponse:
                writes.Seen(deviceId, message.ReceivedAt);
                var answer = message.Answer!.Value;
                writes.Answers.Add(new CommandAnswerWrite(answer.CommandId, deviceId, answer.IsError ? CommandStatus.Failed : CommandStatus.Completed,
                    answer.Result, answer.Response));
                break;
        }
    }

    // After the commit: the in-memory registry, metrics and logs learn what is now durable.
    private void Publish(BatchOutcome outcome, IReadOnlyList<InboundMessage> batch)
    {
        var committedAt = time.GetUtcNow();
        foreach (var (deviceId, (signedIn, via, at)) in outcome.Presence)
        {
            registry.SetPresence(deviceId, signedIn, via);
            LogPresence(deviceId, signedIn ? "SIGN_IN" : "SIGN_OUT");
            if (events.Wants(deviceId))
            {
                events.Publish(ServerEvent.Presence(deviceId, signedIn, at));
            }
        }

        foreach (var reading in outcome.WatchedReadings)
        {
            events.Publish(ServerEvent.Reading(reading.DeviceId, reading.ReceivedAt, reading.Topic, reading.Payload.Format, reading.Payload.Utf8,
                reading.Payload.Base64, reading.MessageKey));
        }

        foreach (var (id, _, status, _, createdAt) in outcome.Answered)
        {
            metrics.CommandRoundTrip(committedAt - createdAt);
            LogCommandAnswered(id, status);
        }

        transitions.Announce([.. outcome.Answered.Select(a => new CommandTransition(a.Id, a.DeviceId, a.Status, committedAt, a.Result))]);

        for (var kind = 0; kind < outcome.Received.Length; kind++)
        {
            if (outcome.Received[kind] > 0)
            {
                metrics.MessagesReceived(((TopicKind)kind).ToString(), outcome.Received[kind]);
            }
        }

        foreach (var (reason, detail) in outcome.Rejected)
        {
            metrics.MessageRejected(reason);
            LogRejected(reason, detail);
        }

        foreach (var (deviceId, commandId, current) in outcome.IgnoredAnswers)
        {
            metrics.MessageRejected(current is null ? "unknown-command" : "command-already-finished");
            LogIgnoredAnswer(deviceId, commandId, current?.ToString() ?? "unknown to the gateway");
        }

        foreach (var (deviceId, format) in outcome.NonJson)
        {
            LogNonJsonReading(deviceId, format);
        }

        foreach (var (deviceId, key) in outcome.Duplicates)
        {
            LogDuplicateReading(deviceId, LogText.Printable(key, Payloads.MaxMessageKeyLength));
        }

        metrics.ReadingsStored(outcome.Stored);
        metrics.ReadingsDuplicate(outcome.Duplicates.Count);
        if (batch.Count > 0)
        {
            metrics.IngestLag(committedAt - batch[0].ReceivedAt);
        }
    }

    private sealed class BatchOutcome(EventHub events)
    {
        public Dictionary<string, (bool SignedIn, string? Via, DateTimeOffset At)> Presence { get; } = new(StringComparer.Ordinal);
        public List<(Guid Id, string DeviceId, CommandStatus Status, string Result, DateTimeOffset CreatedAt)> Answered { get; } = [];

        // Stored readings someone follows on GET /api/events (none, and no cost, without a client).
        public List<ReadingWrite> WatchedReadings { get; } = [];
        public int[] Received { get; } = new int[Enum.GetValues<TopicKind>().Length];
        public List<(string Reason, string Detail)> Rejected { get; } = [];
        public List<(string DeviceId, Guid CommandId, CommandStatus? Current)> IgnoredAnswers { get; } = [];
        public List<(string DeviceId, PayloadFormat Format)> NonJson { get; } = [];
        public List<(string DeviceId, string? Key)> Duplicates { get; } = [];
        public int Stored { get; set; }

        // Counted and logged after the commit, once: a failed commit replays the batch.
        public void Reject(string reason, string detail) => Rejected.Add((reason, detail));

        // What the store did with the batch's readings and answers.
        public void Count(IngestBatch writes)
        {
            foreach (var reading in writes.Readings)
            {
                if (reading.Stored)
                {
                    Stored++;
                    if (events.Wants(reading.DeviceId))
                    {
                        WatchedReadings.Add(reading);
                    }
                }
                else
                {
                    Duplicates.Add((reading.DeviceId, reading.MessageKey));
                }
            }

            // Each device's last change that was applied; a skipped one (another instance holds the device) is nobody's news.
            foreach (var change in writes.Presence)
            {
                if (change.Applied)
                {
                    Presence[change.DeviceId] = (change.SignedIn, change.Via, change.At);
                }
            }

            foreach (var answer in writes.Answers)
            {
                if (answer.FinishedCreatedAt is { } createdAt)
                {
                    Answered.Add((answer.CommandId, answer.DeviceId, answer.Status, answer.Result, createdAt));
                }
                else
                {
                    IgnoredAnswers.Add((answer.DeviceId, answer.CommandId, answer.CurrentStatus));
                }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message rejected ({Reason}): {Detail}")]
    private partial void LogRejected(string reason, string detail);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Reading from {DeviceId} stored as {Format}, not JSON")]
    private partial void LogNonJsonReading(string deviceId, PayloadFormat format);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Duplicate reading {MessageKey} from {DeviceId} dropped")]
    private partial void LogDuplicateReading(string deviceId, string? messageKey);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Device {DeviceId} {Presence}")]
    private partial void LogPresence(string deviceId, string presence);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Command {CommandId} {Status}")]
    private partial void LogCommandAnswered(Guid commandId, CommandStatus status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Answer from {DeviceId} for command {CommandId} ignored: the command is {Current}")]
    private partial void LogIgnoredAnswer(string deviceId, Guid commandId, string current);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot store {Count} messages (attempt {Attempt}); they stay unacknowledged and will be retried: {Reason}")]
    private partial void LogStorageFailed(int count, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A batch of {Count} messages cannot be stored and is split to find the one the database refuses: {Reason}")]
    private partial void LogSplitting(int count, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "A stored batch could not be reported to the registry, metrics or log")]
    private partial void LogPublishFailed(Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Storage works again after {Attempts} failed attempts")]
    private partial void LogStorageRecovered(int attempts);
}
