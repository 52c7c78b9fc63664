using IotGateway.Commands;
using Microsoft.Data.Sqlite;

namespace IotGateway.Data.Sqlite;

// The command store on SQLite: every write through the write gate with statements prepared once; reads through EF.
public sealed class SqliteCommandStore(DatabaseWriteGate writeGate, IServiceScopeFactory scopes) : ICommandStore
{
    // Whether a device has Pending commands older than $first (the first of a new batch).
    internal const string OlderPendingSql = """
        SELECT EXISTS (SELECT 1 FROM "Commands" WHERE "DeviceId" = $device AND "Status" = 'Pending' AND "Sequence" < $first)
        """;

    // A TCP device's lane belongs to the instance that holds its connection: no other instance claims it, and that
    // one takes it over at once. (The clauses on "Devices" are the same in every claim below.)
    private const string ClaimLaneSql = """
        INSERT INTO "CommandLanes" ("DeviceId", "Owner", "LeaseUntil")
        SELECT $device, $owner, $until
        WHERE NOT EXISTS (SELECT 1 FROM "Devices" AS d WHERE d."Id" = $device AND d."Transport" = 'tcp' AND d."TcpInstance" IS NOT $owner)
        ON CONFLICT ("DeviceId") DO UPDATE SET "Owner" = excluded."Owner", "LeaseUntil" = excluded."LeaseUntil"
        WHERE "CommandLanes"."Owner" = excluded."Owner" OR "CommandLanes"."LeaseUntil" < $now
            OR EXISTS (SELECT 1 FROM "Devices" AS d WHERE d."Id" = excluded."DeviceId" AND d."Transport" = 'tcp' AND d."TcpInstance" = excluded."Owner")
        RETURNING "DeviceId"
        """;

    public async Task<QueuedCommands> QueueAsync(IReadOnlyList<Command> commands, LaneLease lease, CancellationToken cancellationToken)
    {
        var claimed = new List<string>();
        var elsewhere = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        // One prepared INSERT per command in one transaction: a bulk request for 10,000 devices commits in
        // milliseconds, where change tracking took seconds.
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var insert = write.Prepare("""
            INSERT INTO "Commands" ("Id", "DeviceId", "Name", "Payload", "Status", "TtlSeconds", "CreatedAt", "ExpiresAt", "RequestedBy", "BatchId")
            VALUES ($id, $device, $name, $payload, 'Pending', $ttl, $created, $expires, $by, $batch)
            RETURNING "Sequence"
            """, "$id", "$device", "$name", "$payload", "$ttl", "$created", "$expires", "$by", "$batch");
        foreach (var command in commands)
        {
            Bind(insert, command.Id.ToString(), command.DeviceId, command.Name, command.Payload, command.TtlSeconds, command.CreatedAt.UtcTicks,
                command.ExpiresAt.UtcTicks, command.RequestedBy, command.BatchId?.ToString());
            command.Sequence = (long)insert.ExecuteScalar()!;
        }

        var claim = write.Prepare(ClaimLaneSql, "$device", "$owner", "$until", "$now");
        // Who publishes a device's commands when this instance does not: a TCP device's connection holder (none while it
        // is away: its commands wait for it), or the lane's holder.
        var owner = write.Prepare("""
            SELECT CASE WHEN d."Transport" = 'tcp' THEN d."TcpInstance" ELSE (SELECT l."Owner" FROM "CommandLanes" AS l WHERE l."DeviceId" = $device) END
            FROM (SELECT $device AS "Id") AS x LEFT JOIN "Devices" AS d ON d."Id" = x."Id"
            """, "$device");
        var older = write.Prepare(OlderPendingSql, "$device", "$first");
        var behind = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (deviceId, first) in commands.GroupBy(c => c.DeviceId, StringComparer.Ordinal).Select(g => (g.Key, g.Min(c => c.Sequence))))
        {
            Bind(claim, deviceId, lease.Owner, lease.Until.UtcTicks, lease.Now.UtcTicks);
            if (claim.ExecuteScalar() is not null)
            {
                claimed.Add(deviceId);
                Bind(older, deviceId, first);
                if ((long)older.ExecuteScalar()! != 0)
                {
                    behind.Add(deviceId);
                }

                continue;
            }

            Bind(owner, deviceId);
            if (owner.ExecuteScalar() is string holder)
            {
                (elsewhere.TryGetValue(holder, out var devices) ? devices : elsewhere[holder] = []).Add(deviceId);
            }
        }

        write.Commit();
        return new QueuedCommands(commands, claimed, behind, elsewhere);
    }

    public async Task<Command?> NextPendingAsync(string deviceId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().NextPendingCommandAsync(deviceId, now, cancellationToken);
    }

    public async Task<IReadOnlyList<string>> ClaimLanesAsync(IReadOnlyCollection<string> deviceIds, LaneLease lease, CancellationToken cancellationToken)
    {
        var claimed = new List<string>();
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var claim = write.Prepare(ClaimLaneSql, "$device", "$owner", "$until", "$now");
        foreach (var deviceId in deviceIds)
        {
            Bind(claim, deviceId, lease.Owner, lease.Until.UtcTicks, lease.Now.UtcTicks);
            if (claim.ExecuteScalar() is not null)
            {
                claimed.Add(deviceId);
            }
        }

        write.Commit();
        return claimed;
    }

    public async Task<IReadOnlyList<string>> ClaimPendingLanesAsync(LaneLease lease, CancellationToken cancellationToken)
    {
        // Usually nothing is pending: a read does not queue behind (or hold up) the writers.
        await using (var scope = scopes.CreateAsyncScope())
        {
            if (!await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().AnyCommandPendingAsync(lease.Now, cancellationToken))
            {
                return [];
            }
        }

        var claimed = new List<string>();
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var claim = write.Prepare("""
            INSERT INTO "CommandLanes" ("DeviceId", "Owner", "LeaseUntil")
            SELECT DISTINCT c."DeviceId", $owner, $until FROM "Commands" AS c WHERE c."Status" = 'Pending' AND c."ExpiresAt" > $now
                AND NOT EXISTS (SELECT 1 FROM "Devices" AS d WHERE d."Id" = c."DeviceId" AND d."Transport" = 'tcp' AND d."TcpInstance" IS NOT $owner)
            ON CONFLICT ("DeviceId") DO UPDATE SET "Owner" = excluded."Owner", "LeaseUntil" = excluded."LeaseUntil"
            WHERE "CommandLanes"."Owner" = excluded."Owner" OR "CommandLanes"."LeaseUntil" < $now
                OR EXISTS (SELECT 1 FROM "Devices" AS d WHERE d."Id" = excluded."DeviceId" AND d."Transport" = 'tcp' AND d."TcpInstance" = excluded."Owner")
            RETURNING "DeviceId"
            """, "$owner", "$until", "$now");
        Bind(claim, lease.Owner, lease.Until.UtcTicks, lease.Now.UtcTicks);
        using (var reader = claim.ExecuteReader())
        {
            while (reader.Read())
            {
                claimed.Add(reader.GetString(0));
            }
        }

        write.Commit();
        return claimed;
    }

    public async Task ReleaseLanesAsync(string owner, CancellationToken cancellationToken)
    {
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var release = write.Prepare("""DELETE FROM "CommandLanes" WHERE "Owner" = $owner""", "$owner");
        Bind(release, owner);
        release.ExecuteNonQuery();
        write.Commit();
    }

    public async Task<IReadOnlyList<CommandChanged>> MarkPublishedAsync(IReadOnlyList<(Guid Id, DateTimeOffset At)> published, CancellationToken cancellationToken)
    {
        var transitions = new List<CommandChanged>();
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        // A device may already have answered (fast devices answer before this update runs) or an operator cancelled
        // the command: then only PublishedAt is filled in, and never later than the answer it got.
        var update = write.Prepare("""
            UPDATE "Commands" SET "PublishedAt" = min($at, COALESCE("AnsweredAt", $at)),
                "Status" = CASE WHEN "Status" = 'Pending' THEN 'Published' ELSE "Status" END
            WHERE "Id" = $id AND "PublishedAt" IS NULL
            RETURNING "Status", "DeviceId"
            """, "$id", "$at");
        foreach (var (id, at) in published)
        {
            Bind(update, id.ToString(), at.UtcTicks);
            using var reader = update.ExecuteReader();
            if (reader.Read() && reader.GetString(0) == nameof(CommandStatus.Published))
            {
                transitions.Add(new CommandChanged(id, reader.GetString(1)));
            }
        }

        write.Commit();
        return transitions;
    }

    public async Task<IReadOnlyList<CommandChanged>> ExpireDueAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using (var scope = scopes.CreateAsyncScope())
        {
            if (!await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().AnyCommandDueAsync(now, cancellationToken))
            {
                return [];
            }
        }

        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var update = write.Prepare("""
            UPDATE "Commands" SET "Status" = 'Expired', "ExpiredAt" = $now
            WHERE "Status" IN ('Pending', 'Published') AND "ExpiresAt" <= $now
            RETURNING "Id", "DeviceId"
            """, "$now");
        Bind(update, now.UtcTicks);
        var expired = ReadChanged(update);
        write.Commit();
        return expired;
    }

    public async Task<IReadOnlyList<CommandChanged>> CancelBatchAsync(Guid batchId, string? cancelledBy, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var cancel = write.Prepare("""
            UPDATE "Commands" SET "Status" = 'Cancelled', "CancelledAt" = $now, "CancelledBy" = $by
            WHERE "BatchId" = $batch AND "Status" IN ('Pending', 'Published')
            RETURNING "Id", "DeviceId"
            """, "$batch", "$now", "$by");
        Bind(cancel, batchId.ToString(), now.UtcTicks, cancelledBy);
        var cancelled = ReadChanged(cancel);
        write.Commit();
        return cancelled;
    }

    private static List<CommandChanged> ReadChanged(SqliteCommand command)
    {
        var changed = new List<CommandChanged>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            changed.Add(new CommandChanged(Guid.Parse(reader.GetString(0)), reader.GetString(1)));
        }

        return changed;
    }

    public async Task<CancelOutcome> CancelAsync(Guid id, string? cancelledBy, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var cancel = write.Prepare("""
            UPDATE "Commands" SET "Status" = 'Cancelled', "CancelledAt" = $now, "CancelledBy" = $by
            WHERE "Id" = $id AND "Status" IN ('Pending', 'Published')
            RETURNING "DeviceId"
            """, "$id", "$now", "$by");
        Bind(cancel, id.ToString(), now.UtcTicks, cancelledBy);
        if (cancel.ExecuteScalar() is string deviceId)
        {
            write.Commit();
            return new CancelOutcome(CancelResult.Cancelled, DeviceId: deviceId);
        }

        var status = Status(write, id, deviceId: null);
        write.Commit();
        return status is null ? new CancelOutcome(CancelResult.NotFound) : new CancelOutcome(CancelResult.AlreadyFinished, status);
    }

    // Inside an ingest batch's transaction: the answer finishes an open command of that device, or is ignored.
    internal static void Answer(WriteTransaction write, CommandAnswerWrite answer, DateTimeOffset at)
    {
        var update = write.Prepare("""
            UPDATE "Commands" SET "Status" = $status, "Result" = $result, "Response" = $response, "AnsweredAt" = $at
            WHERE "Id" = $id AND "DeviceId" = $device AND "Status" IN ('Pending', 'Published')
            RETURNING "CreatedAt"
            """, "$status", "$result", "$response", "$at", "$id", "$device");
        Bind(update, answer.Status.ToString(), answer.Result, answer.Response, at.UtcTicks, answer.CommandId.ToString(), answer.DeviceId);
        if (update.ExecuteScalar() is long ticks)
        {
            answer.FinishedCreatedAt = new DateTimeOffset(ticks, TimeSpan.Zero);
            return;
        }

        answer.CurrentStatus = Status(write, answer.CommandId, answer.DeviceId);
    }

    private static CommandStatus? Status(WriteTransaction write, Guid id, string? deviceId)
    {
        var select = write.Prepare("""SELECT "Status" FROM "Commands" WHERE "Id" = $id AND ($device IS NULL OR "DeviceId" = $device)""", "$id", "$device");
        Bind(select, id.ToString(), deviceId);
        return select.ExecuteScalar() is string status && Enum.TryParse<CommandStatus>(status, out var parsed) ? parsed : null;
    }

    private static void Bind(SqliteCommand command, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        }
    }
}
