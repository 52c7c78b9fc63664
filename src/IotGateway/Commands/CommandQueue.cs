using System.Text.Json;
using IotGateway.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace IotGateway.Commands;

public sealed record CommandRequestSpec(string Name, JsonElement? Payload, int? TtlSeconds, string? RequestedBy);

// Stores new commands as Pending and wakes the dispatcher. Used by the API, the bulk endpoint and the heartbeat.
public sealed class CommandQueue(GatewayDbContext db, CommandDispatcher dispatcher, IOptions<CommandOptions> options,
    GatewayMetrics metrics, TimeProvider time)
{
    public async Task<Command> QueueAsync(string deviceId, CommandRequestSpec spec, CancellationToken cancellationToken)
    {
        var commands = await QueueManyAsync([deviceId], spec, batchId: null, cancellationToken);
        return commands[0];
    }

    public async Task<IReadOnlyList<Command>> QueueManyAsync(IReadOnlyCollection<string> deviceIds, CommandRequestSpec spec, Guid? batchId,
        CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var ttl = spec.TtlSeconds ?? options.Value.DefaultTtlSeconds;
        var payload = spec.Payload is { ValueKind: not JsonValueKind.Undefined and not JsonValueKind.Null } p ? p.GetRawText() : null;
        var commands = deviceIds.Select(deviceId => new Command
        {
            Id = Guid.CreateVersion7(now),
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

        db.Commands.AddRange(commands);
        await db.SaveChangesAsync(cancellationToken);
        db.ChangeTracker.Clear();
        metrics.CommandTransition(CommandStatus.Pending, commands.Count);
        dispatcher.Wake();
        return commands;
    }

    public Task<bool> DeviceExistsAsync(string deviceId, CancellationToken cancellationToken) =>
        db.Devices.AnyAsync(d => d.Id == deviceId, cancellationToken);
}
