namespace IotGateway.Data;

public sealed class Device
{
    public required string Id { get; set; }
    public bool SignedIn { get; set; }
    public required DateTimeOffset FirstSeen { get; set; }
    public DateTimeOffset? LastSeen { get; set; }
    public DateTimeOffset? SignedInAt { get; set; }
    public DateTimeOffset? SignedOutAt { get; set; }

    // Maintained as data is written (telemetry batches and command triggers), never counted per request.
    public long TelemetryCount { get; set; }
    public int PendingCommands { get; set; }

    // How it last signed in: "mqtt", or "tcp" (the article's TCP device, on the gateway's TCP listener).
    public string Transport { get; set; } = DeviceTransports.Mqtt;

    // For a TCP device, the gateway instance (its Mqtt:ClientId) that holds its connection; null while it is away.
    public string? TcpInstance { get; set; }
}

public static class DeviceTransports
{
    public const string Mqtt = "mqtt";
    public const string Tcp = "tcp";
}

public enum PayloadFormat
{
    Json = 0,
    Text = 1,
    Binary = 2,
}

public sealed class TelemetryReading
{
    public long Id { get; set; }
    public required string DeviceId { get; set; }
    public required DateTimeOffset ReceivedAt { get; set; }
    public required string Topic { get; set; }

    // JSON text when Format is Json, UTF-8 text when Text, base64 when Binary.
    public required string Payload { get; set; }
    public PayloadFormat Format { get; set; }

    // The device's own id for the reading (messageId/uuid/MQTT 5 user property), used to drop redeliveries.
    public string? MessageKey { get; set; }
}

public enum CommandStatus
{
    Pending = 0,
    Published = 1,
    Completed = 2,
    Failed = 3,
    Expired = 4,
    Cancelled = 5,
}

public sealed class Command
{
    // Internal insertion order: commands go out in this order.
    public long Sequence { get; set; }

    // The public id, sent to the device as "uuid".
    public required Guid Id { get; set; }
    public required string DeviceId { get; set; }
    public required string Name { get; set; }

    // Arguments as JSON text, sent as "payload".
    public string? Payload { get; set; }
    public CommandStatus Status { get; set; }
    public required int TtlSeconds { get; set; }
    public required DateTimeOffset CreatedAt { get; set; }
    public required DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? PublishedAt { get; set; }
    public DateTimeOffset? AnsweredAt { get; set; }
    public DateTimeOffset? ExpiredAt { get; set; }
    public DateTimeOffset? CancelledAt { get; set; }

    // commandResult as text (a JSON result is kept as JSON text), and the device's whole answer.
    public string? Result { get; set; }
    public string? Response { get; set; }

    // Which API key (by name) or which gateway feature queued it, and which key cancelled it.
    public string? RequestedBy { get; set; }
    public string? CancelledBy { get; set; }
    public Guid? BatchId { get; set; }

    public static bool IsOpen(CommandStatus status) => status is CommandStatus.Pending or CommandStatus.Published;
}

// Which gateway instance publishes a device's commands, until when: a lease, so that several instances on one
// database publish each device's commands from one place, in order, and a dead instance's devices are taken over.
public sealed class CommandLane
{
    public required string DeviceId { get; set; }

    // The owning instance's Mqtt:ClientId.
    public required string Owner { get; set; }
    public required DateTimeOffset LeaseUntil { get; set; }
}
