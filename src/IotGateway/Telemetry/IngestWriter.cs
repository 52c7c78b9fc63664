using System.Threading.Channels;
using IotGateway.Commands;
using IotGateway.Data;
using IotGateway.Devices;
using IotGateway.Events;
using IotGateway.Mqtt;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IotGateway.Telemetry;

public sealed record IngestState(bool Healthy, string? LastError);

// The one writer: drains the ingest queue in batches, stores each batch in one transaction, and only then
// acknowledges its messages, in arrival order. A failed commit is retried with the messages still unacked,
// so the broker keeps them whatever happens to this process.
public sealed partial class IngestWriter(
    IngestQueue queue,
    MqttConnection connection,
    DeviceRegistry registry,
    CommandCompletion completion,
    EventHub events,
    DatabaseWriteGate writeGate,
    IOptions<IngestOptions> options,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<IngestWriter> logger) : BackgroundService
{
    private const int AcksPerSend = 512;

    private readonly IngestOptions _options = options.Value;

    public IngestState State { get; private set; } = new(true, null);

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

            if (!await StoreWithRetryAsync(batch, stoppingToken))
            {
                return;
            }

            await committed.WriteAsync(batch, CancellationToken.None);
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

    private async Task<bool> StoreWithRetryAsync(List<InboundMessage> batch, CancellationToken stoppingToken)
    {
        var attempt = 0;
        while (true)
        {
            try
            {
                await StoreAsync(batch);
                if (!State.Healthy)
                {
                    LogStorageRecovered(attempt);
                    State = new IngestState(true, null);
                }

                return true;
            }
            catch (Exception ex) when (ex is SqliteException or DbUpdateException or InvalidOperationException or IOException)
            {
                // Locked or full database: keep the batch unacknowledged and try again; readiness reports it.
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
            }
        }
    }

    internal async Task StoreAsync(IReadOnlyList<InboundMessage> batch)
    {
        var outcome = new BatchOutcome();
        await using (var write = await WriteTransaction.BeginAsync(writeGate, CancellationToken.None))
        {
            var now = time.GetUtcNow();
            var sql = new BatchStatements(write);
            foreach (var message in batch)
            {
                Store(message, sql, outcome, now);
            }

            // Every device with an entry here was seen in this batch.
            foreach (var (deviceId, activity) in outcome.Devices)
            {
                sql.RecordActivity(deviceId, activity.Readings, activity.LastSeen, now);
            }

            write.Commit();
        }

        Publish(outcome, batch);
    }

    private void Store(InboundMessage message, BatchStatements sql, BatchOutcome outcome, DateTimeOffset now)
    {
        if (message is not { Kind: { } kind, DeviceId: { } deviceId })
        {
            outcome.Reject("unknown-topic", $"topic '{LogText.Printable(message.Topic)}' is not {{prefix}}/{{deviceId}} with a valid device id");
            return;
        }

        outcome.Received[(int)kind]++;
        if (message.IsOversized)
        {
            outcome.Reject("oversized", $"payload of {message.PayloadLength} bytes from '{deviceId}' exceeds Ingest:MaxPayloadBytes ({_options.MaxPayloadBytes})");
            return;
        }

        switch (kind)
        {
            case TopicKind.Data:
                StoreReading(message, deviceId, sql, outcome);
                break;
            case TopicKind.Register:
                StorePresence(message, deviceId, sql, outcome);
                break;
            case TopicKind.CommandResponse:
                outcome.Activity(deviceId).Seen(message.ReceivedAt);
                StoreAnswer(message, deviceId, sql, outcome, now);
                break;
        }
    }

    private void StoreReading(InboundMessage message, string deviceId, BatchStatements sql, BatchOutcome outcome)
    {
        // Classified on receipt unless empty (an oversized one was refused above).
        if (message.Reading is not { } payload)
        {
            outcome.Reject("empty", $"empty telemetry payload from '{deviceId}'");
            return;
        }

        var activity = outcome.Activity(deviceId);
        if (payload.Format != PayloadFormat.Json)
        {
            LogNonJsonReading(deviceId, payload.Format);
        }

        var key = message.UserMessageId is { Length: > 0 and <= Payloads.MaxMessageKeyLength } id ? id : payload.MessageKey;
        if (sql.InsertReading(deviceId, message.ReceivedAt, message.Topic, payload, key))
        {
            activity.Readings++;
            outcome.Stored++;
            if (events.Wants(deviceId))
            {
                outcome.Readings.Add((message, deviceId, payload, key));
            }
        }
        else
        {
            outcome.Duplicates++;
            LogDuplicateReading(deviceId, LogText.Printable(key, Payloads.MaxMessageKeyLength));
        }

        activity.Seen(message.ReceivedAt);
    }

    private void StorePresence(InboundMessage message, string deviceId, BatchStatements sql, BatchOutcome outcome)
    {
        var text = message.PayloadAsText();
        if (text.Length == 0)
        {
            // A cleared retained message, not a presence change.
            return;
        }

        if (text is not ("SIGN_IN" or "SIGN_OUT"))
        {
            outcome.Reject("bad-register-payload", $"register payload from '{deviceId}' is '{LogText.Printable(text)}', not SIGN_IN or SIGN_OUT");
            return;
        }

        var signedIn = text == "SIGN_IN";
        // A retained replay or a Last Will is not the device being seen.
        var seenAt = signedIn && !message.Retain ? message.ReceivedAt : (DateTimeOffset?)null;
        sql.SetPresence(deviceId, signedIn, message.ReceivedAt, seenAt);
        outcome.Presence[deviceId] = (signedIn, message.ReceivedAt);
    }

    private void StoreAnswer(InboundMessage message, string deviceId, BatchStatements sql, BatchOutcome outcome, DateTimeOffset now)
    {
        if (!CommandAnswer.TryParse(message.Payload!, out var answer, out var problem))
        {
            outcome.Reject("bad-command-response", $"command response from '{deviceId}' ignored: {LogText.Printable(problem, 400)}");
            return;
        }

        var status = answer.IsError ? CommandStatus.Failed : CommandStatus.Completed;
        var response = message.PayloadAsText();
        if (sql.AnswerCommand(answer.CommandId, deviceId, status, answer.Result, response, now) is { } createdAt)
        {
            outcome.Answered.Add((answer.CommandId, deviceId, status, answer.Result, createdAt));
            return;
        }

        var current = sql.CommandStatus(answer.CommandId, deviceId);
        outcome.IgnoredAnswers.Add((deviceId, answer.CommandId, current));
    }

    // After the commit: the in-memory registry, metrics and logs learn what is now durable.
    private void Publish(BatchOutcome outcome, IReadOnlyList<InboundMessage> batch)
    {
        var committedAt = time.GetUtcNow();
        foreach (var (deviceId, (signedIn, at)) in outcome.Presence)
        {
            registry.SetPresence(deviceId, signedIn);
            LogPresence(deviceId, signedIn ? "SIGN_IN" : "SIGN_OUT");
            if (events.Wants(deviceId))
            {
                events.Publish(ServerEvent.Presence(deviceId, signedIn, at));
            }
        }

        foreach (var (message, deviceId, payload, key) in outcome.Readings)
        {
            events.Publish(ServerEvent.Reading(deviceId, message.ReceivedAt, message.Topic, payload.Format, payload.Utf8, payload.Base64, key));
        }

        foreach (var (id, deviceId, status, result, createdAt) in outcome.Answered)
        {
            metrics.CommandTransition(status);
            metrics.CommandRoundTrip(committedAt - createdAt);
            completion.Finished(id);
            LogCommandAnswered(id, status);
            if (events.Wants(deviceId))
            {
                events.Publish(ServerEvent.Command(deviceId, id, status, committedAt, result));
            }
        }

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

        metrics.ReadingsStored(outcome.Stored);
        metrics.ReadingsDuplicate(outcome.Duplicates);
        if (batch.Count > 0)
        {
            metrics.IngestLag(committedAt - batch[0].ReceivedAt);
        }
    }


    private sealed class BatchOutcome
    {
        public Dictionary<string, DeviceActivity> Devices { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, (bool SignedIn, DateTimeOffset At)> Presence { get; } = new(StringComparer.Ordinal);
        public List<(Guid Id, string DeviceId, CommandStatus Status, string Result, DateTimeOffset CreatedAt)> Answered { get; } = [];

        // Stored readings someone watches on GET /api/events (none, and no cost, without a client).
        public List<(InboundMessage Message, string DeviceId, ClassifiedPayload Payload, string? Key)> Readings { get; } = [];
        public int[] Received { get; } = new int[Enum.GetValues<TopicKind>().Length];
        public List<(string Reason, string Detail)> Rejected { get; } = [];
        public List<(string DeviceId, Guid CommandId, CommandStatus? Current)> IgnoredAnswers { get; } = [];
        public int Stored { get; set; }
        public int Duplicates { get; set; }

        // Counted and logged after the commit, once: a failed commit replays the batch.
        public void Reject(string reason, string detail) => Rejected.Add((reason, detail));

        public DeviceActivity Activity(string deviceId) =>
            Devices.TryGetValue(deviceId, out var known) ? known : Devices[deviceId] = new DeviceActivity();
    }

    private sealed class DeviceActivity
    {
        public int Readings { get; set; }
        public DateTimeOffset? LastSeen { get; private set; }

        public void Seen(DateTimeOffset at) => LastSeen = LastSeen is { } last && last > at ? last : at;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message rejected ({Reason}): {Detail}")]
    private partial void LogRejected(string reason, string detail);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Reading from {DeviceId} stored as {Format}, not JSON")]
    private partial void LogNonJsonReading(string deviceId, PayloadFormat format);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Duplicate reading {MessageKey} from {DeviceId} dropped")]
    private partial void LogDuplicateReading(string deviceId, string? messageKey);

    [LoggerMessage(Level = LogLevel.Information, Message = "Device {DeviceId} {Presence}")]
    private partial void LogPresence(string deviceId, string presence);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command {CommandId} {Status}")]
    private partial void LogCommandAnswered(Guid commandId, CommandStatus status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Answer from {DeviceId} for command {CommandId} ignored: the command is {Current}")]
    private partial void LogIgnoredAnswer(string deviceId, Guid commandId, string current);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot store {Count} messages (attempt {Attempt}); they stay unacknowledged and will be retried: {Reason}")]
    private partial void LogStorageFailed(int count, int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Storage works again after {Attempts} failed attempts")]
    private partial void LogStorageRecovered(int attempts);
}
