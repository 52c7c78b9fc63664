using IotGateway.Commands;

namespace IotGateway.Ingest;

// Stores one ingest batch in one transaction, per provider (SqliteIngestStore, PostgresIngestStore): readings
// (deduplicated by device and message key), presence in arrival order, each seen device's activity (TelemetryCount,
// LastSeen), and the devices' answers through the command store's statements.
public interface IIngestStore
{
    // Fills in the results (ReadingWrite.Stored, the answers' outcome). Throws when the transaction failed: nothing of
    // the batch is then stored.
    Task StoreAsync(IngestBatch batch, CancellationToken cancellationToken);
}

// What one batch writes, in arrival order; provider-neutral.
public sealed class IngestBatch(DateTimeOffset now)
{
    public DateTimeOffset Now { get; } = now;
    public List<ReadingWrite> Readings { get; } = [];
    public List<PresenceWrite> Presence { get; } = [];
    public List<CommandAnswerWrite> Answers { get; } = [];

    // Every device a message of the batch came from, with the latest time the device itself was seen (null: only a
    // retained or will presence message, which is not the device being seen).
    public Dictionary<string, DateTimeOffset?> Devices { get; } = new(StringComparer.Ordinal);

    public void Seen(string deviceId, DateTimeOffset? at)
    {
        var known = Devices.TryGetValue(deviceId, out var last);
        Devices[deviceId] = !known ? at : last is { } l && (at is null || l > at) ? l : at;
    }
}

public sealed class ReadingWrite(string deviceId, DateTimeOffset receivedAt, string topic, ClassifiedPayload payload, string? messageKey)
{
    public string DeviceId { get; } = deviceId;
    public DateTimeOffset ReceivedAt { get; } = receivedAt;
    public string Topic { get; } = topic;
    public ClassifiedPayload Payload { get; } = payload;
    public string? MessageKey { get; } = messageKey;

    // Set by the store: false when a reading with the same key from the same device was stored before.
    public bool Stored { get; set; }
}

// Via: the transport the change came over when it says how the device connects ("mqtt" for an MQTT SIGN_IN, "tcp" for
// a TCP connection's start or end), null when it does not (an MQTT SIGN_OUT or Last Will). Instance: for "tcp", the
// gateway instance that holds (or held) the connection. A TCP sign-out from an instance that no longer holds the
// device (it reconnected to another meanwhile) changes nothing.
public sealed record PresenceWrite(string DeviceId, bool SignedIn, DateTimeOffset At, DateTimeOffset? SeenAt, string? Via = null, string? Instance = null)
{
    // Set by the store: false when the change was skipped (that TCP sign-out), so nobody is told of it.
    public bool Applied { get; set; }
}
