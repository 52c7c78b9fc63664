
namespace IotGateway.Commands;

// The one home of every command status transition, per provider (SqliteCommandStore, PostgresCommandStore):
//   queue (Pending) → mark published (Published) → answer (Completed/Failed, inside an ingest batch's transaction)
//   and, while open, expire (Expired) or cancel (Cancelled).
// And the lanes' leases: which instance publishes a device's commands (see CommandDispatcher).
public interface ICommandStore
{
    // Stores the commands as Pending in the order given (Sequence filled in) and, in the same transaction, claims the
    // lanes of their devices for the lease's owner where they are free or already its own.
    Task<QueuedCommands> QueueAsync(IReadOnlyList<Command> commands, LaneLease lease, CancellationToken cancellationToken);

    // The device's oldest Pending command that has not expired, or null.
    Task<Command?> NextPendingAsync(string deviceId, DateTimeOffset now, CancellationToken cancellationToken);

    // Claims (or renews) these devices' lanes where free or already the owner's; returns the devices now held.
    Task<IReadOnlyList<string>> ClaimLanesAsync(IReadOnlyCollection<string> deviceIds, LaneLease lease, CancellationToken cancellationToken);

    // Claims the lanes of every device with Pending commands whose lane is free, expired or the owner's (the scan:
    // catch-up after a restart or an outage, and takeover from an instance that died); returns the devices now held.
    Task<IReadOnlyList<string>> ClaimPendingLanesAsync(LaneLease lease, CancellationToken cancellationToken);

    // Lets go of every lane the owner holds (a clean shutdown: other instances take its devices at once).
    Task ReleaseLanesAsync(string owner, CancellationToken cancellationToken);

    // Published at the given times. A command answered or cancelled meanwhile keeps its status and only gets its
    // PublishedAt. Returns those that became Published.
    Task<IReadOnlyList<CommandChanged>> MarkPublishedAsync(IReadOnlyList<(Guid Id, DateTimeOffset At)> published, CancellationToken cancellationToken);

    // Open commands whose TTL ran out become Expired; returns them.
    Task<IReadOnlyList<CommandChanged>> ExpireDueAsync(DateTimeOffset now, CancellationToken cancellationToken);

    // An open command becomes Cancelled. A Pending one is then never sent: lanes only publish what is Pending.
    Task<CancelOutcome> CancelAsync(Guid id, string? cancelledBy, DateTimeOffset now, CancellationToken cancellationToken);

    // Every open command of a bulk request becomes Cancelled; returns them.
    Task<IReadOnlyList<CommandChanged>> CancelBatchAsync(Guid batchId, string? cancelledBy, DateTimeOffset now, CancellationToken cancellationToken);
}

// A command whose status a store call changed, and its device (live events are per device).
public readonly record struct CommandChanged(Guid Id, string DeviceId);

// Who holds a lane and until when, as of now.
public readonly record struct LaneLease(string Owner, DateTimeOffset Now, DateTimeOffset Until);

// Claimed: the devices whose lanes the owner now holds. Behind: those of them with older Pending commands than these
// (their lanes read the database first; the others can publish the new commands as they are).
// HeldElsewhere: devices whose lane another live instance holds, by that instance; it is told to publish them.
public sealed record QueuedCommands(IReadOnlyList<Command> Commands, IReadOnlyList<string> Claimed, IReadOnlySet<string> Behind,
    IReadOnlyDictionary<string, List<string>> HeldElsewhere);

public enum CancelResult
{
    Cancelled,
    NotFound,
    AlreadyFinished,
}

// Status: what an already finished command is; DeviceId: the device of the one cancelled.
public readonly record struct CancelOutcome(CancelResult Result, CommandStatus? Status = null, string? DeviceId = null);

// A device's answer to store (inside an ingest batch), and what became of it.
public sealed class CommandAnswerWrite(Guid commandId, string deviceId, CommandStatus status, string result, string response)
{
    public Guid CommandId { get; } = commandId;
    public string DeviceId { get; } = deviceId;
    public CommandStatus Status { get; } = status;
    public string Result { get; } = result;
    public string Response { get; } = response;

    // Set by the store: the command's creation time when this answer finished it; otherwise its status (null: unknown).
    public DateTimeOffset? FinishedCreatedAt { get; set; }
    public CommandStatus? CurrentStatus { get; set; }
}
