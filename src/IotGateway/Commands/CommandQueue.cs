using System.Text.Json;
using IotGateway.Data;
using IotGateway.Devices;
using IotGateway.Events;
using Microsoft.Extensions.Options;

namespace IotGateway.Commands;

public sealed record CommandRequestSpec(string Name, JsonElement? Payload, int? TtlSeconds, string? RequestedBy);

// Stores new commands as Pending and hands them to the dispatcher, which publishes them at once.
// Used by the API, the bulk endpoint and the heartbeat.
public sealed class CommandQueue(GatewayDbContext db, DatabaseWriteGate writeGate, CommandDispatcher dispatcher, DeviceRegistry registry,
    EventHub events, IOptions<CommandOptions> options, GatewayMetrics metrics, TimeProvider time)
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

        // One prepared INSERT per command in one transaction: a bulk request for 10,000 devices commits in
        // milliseconds, where change tracking took seconds.
        await using (var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken))
        {
            var insert = write.Prepare("""
                INSERT INTO "Commands" ("Id", "DeviceId", "Name", "Payload", "Status", "TtlSeconds", "CreatedAt", "ExpiresAt", "RequestedBy", "BatchId")
                VALUES ($id, $device, $name, $payload, 'Pending', $ttl, $created, $expires, $by, $batch)
                RETURNING "Sequence"
                """, "$id", "$device", "$name", "$payload", "$ttl", "$created", "$expires", "$by", "$batch");
            var (id, device) = (insert.Parameters["$id"], insert.Parameters["$device"]);
            insert.Parameters["$name"].Value = spec.Name;
            insert.Parameters["$payload"].Value = (object?)payload ?? DBNull.Value;
            insert.Parameters["$ttl"].Value = ttl;
            insert.Parameters["$created"].Value = now.UtcTicks;
            insert.Parameters["$expires"].Value = now.AddSeconds(ttl).UtcTicks;
            insert.Parameters["$by"].Value = (object?)spec.RequestedBy ?? DBNull.Value;
            insert.Parameters["$batch"].Value = (object?)batchId?.ToString() ?? DBNull.Value;
            foreach (var command in commands)
            {
                id.Value = command.Id.ToString();
                device.Value = command.DeviceId;
                command.Sequence = (long)insert.ExecuteScalar()!;
            }

            write.Commit();

            // Before the hand-over, which may publish and mark a command Published at once: Pending comes first.
            foreach (var command in commands)
            {
                if (events.Wants(command.DeviceId))
                {
                    events.Publish(ServerEvent.Command(command.DeviceId, command.Id, CommandStatus.Pending, now));
                }
            }

            // Still inside the gate: the dispatcher receives commands in the order they were committed.
            dispatcher.HandOver(commands);
        }

        metrics.CommandTransition(CommandStatus.Pending, commands.Count);
        return commands;
    }

    // A signed-in device is known without a query.
    public async Task<bool> DeviceExistsAsync(string deviceId, CancellationToken cancellationToken) =>
        registry.IsSignedIn(deviceId) || await db.DeviceExistsAsync(deviceId, cancellationToken);
}
