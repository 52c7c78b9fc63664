using System.Text.Json;
using IotGateway.Data;
using IotGateway.Devices;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;

namespace IotGateway.Commands;

public sealed record CommandRequestSpec(string Name, JsonElement? Payload, int? TtlSeconds, string? RequestedBy);

// Stores new commands as Pending and hands them to the dispatcher, which publishes them at once.
// Used by the API, the bulk endpoint and the heartbeat.
public sealed class CommandQueue(GatewayDbContext db, DatabaseWriteGate writeGate, CommandDispatcher dispatcher, DeviceRegistry registry,
    IOptions<CommandOptions> options, GatewayMetrics metrics, TimeProvider time)
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
        using (await writeGate.EnterAsync(cancellationToken))
        {
            await db.Database.OpenConnectionAsync(cancellationToken);
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            using var insert = ((SqliteConnection)db.Database.GetDbConnection()).CreateCommand();
            insert.Transaction = (SqliteTransaction)transaction.GetDbTransaction();
            insert.CommandText = """
                INSERT INTO "Commands" ("Id", "DeviceId", "Name", "Payload", "Status", "TtlSeconds", "CreatedAt", "ExpiresAt", "RequestedBy", "BatchId")
                VALUES ($id, $device, $name, $payload, 'Pending', $ttl, $created, $expires, $by, $batch)
                RETURNING "Sequence"
                """;
            var id = insert.Parameters.Add("$id", SqliteType.Text);
            var device = insert.Parameters.Add("$device", SqliteType.Text);
            insert.Parameters.AddWithValue("$name", spec.Name);
            insert.Parameters.AddWithValue("$payload", (object?)payload ?? DBNull.Value);
            insert.Parameters.AddWithValue("$ttl", ttl);
            insert.Parameters.AddWithValue("$created", now.UtcTicks);
            insert.Parameters.AddWithValue("$expires", now.AddSeconds(ttl).UtcTicks);
            insert.Parameters.AddWithValue("$by", (object?)spec.RequestedBy ?? DBNull.Value);
            insert.Parameters.AddWithValue("$batch", (object?)batchId?.ToString() ?? DBNull.Value);
            insert.Prepare();
            foreach (var command in commands)
            {
                id.Value = command.Id.ToString();
                device.Value = command.DeviceId;
                command.Sequence = (long)insert.ExecuteScalar()!;
            }

            await transaction.CommitAsync(cancellationToken);

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
