using System.Text.Json;
using IotGateway.Devices;

namespace IotGateway.Commands;

public sealed record CommandRequestSpec(string Name, JsonElement? Payload, int? TtlSeconds, string? RequestedBy);

// Stores new commands as Pending and starts publishing them at once: the store claims their devices' lanes in the
// same transaction, this instance's lanes start, and the instances holding the others are told. Used by the API,
// the bulk endpoint and the heartbeat.
public sealed class CommandIntake(GatewayDbContext db, ICommandStore store, CommandDispatcher dispatcher, IClusterSignals signals,
    DeviceRegistry registry, CommandTransitions transitions, IOptions<CommandOptions> options, TimeProvider time)
{
    public async Task<Command> QueueAsync(string deviceId, CommandRequestSpec spec, CancellationToken cancellationToken)
    {
        var commands = await QueueManyAsync([deviceId], spec, batchId: null, cancellationToken);
        return commands[0];
    }

    // With an id chosen by the caller, who can then wait for the command before it could possibly finish.
    public async Task<Command> QueueAsync(string deviceId, CommandRequestSpec spec, Guid id, CancellationToken cancellationToken)
    {
        var commands = await QueueManyAsync([deviceId], spec, batchId: null, cancellationToken, id);
        return commands[0];
    }

    public Guid NewCommandId() => Guid.CreateVersion7(time.GetUtcNow());

    public async Task<IReadOnlyList<Command>> QueueManyAsync(IReadOnlyCollection<string> deviceIds, CommandRequestSpec spec, Guid? batchId,
        CancellationToken cancellationToken) =>
        await QueueManyAsync(deviceIds, spec, batchId, cancellationToken, id: null);

    private async Task<IReadOnlyList<Command>> QueueManyAsync(IReadOnlyCollection<string> deviceIds, CommandRequestSpec spec, Guid? batchId,
        CancellationToken cancellationToken, Guid? id)
    {
        var now = time.GetUtcNow();
        var ttl = spec.TtlSeconds ?? options.Value.DefaultTtlSeconds;
        var payload = spec.Payload is { ValueKind: not JsonValueKind.Undefined and not JsonValueKind.Null } p ? p.GetRawText() : null;
        var commands = deviceIds.Select(deviceId => new Command
        {
            Id = id ?? Guid.CreateVersion7(now),
            DeviceId = deviceId,
            Name = spec.Name,
            Payload = payload,
            Status = CommandStatus.Pending,
            TtlSeconds = ttl,
            CreatedAt = now,
            ExpiresAt = now.AddSeconds(ttl),
            RequestedBy = spec.RequestedBy,
            BatchId = batchId,
        }).ToList();

        var lease = dispatcher.NewLease();
        var queued = await store.QueueAsync(commands, lease, cancellationToken);

        // Before the lanes start, which may publish and mark a command Published at once: Pending comes first.
        transitions.Announce(CommandStatus.Pending, [.. commands.Select(c => new CommandChanged(c.Id, c.DeviceId))], now);
        dispatcher.Run(queued.Claimed, lease.Until, commands, queued.Behind);
        foreach (var (owner, devices) in queued.HeldElsewhere)
        {
            signals.CommandsQueued(owner, devices);
        }

        return commands;
    }

    // A signed-in device is known without a query.
    public async Task<bool> DeviceExistsAsync(string deviceId, CancellationToken cancellationToken) =>
        registry.IsSignedIn(deviceId) || await db.DeviceExistsAsync(deviceId, cancellationToken);
}
