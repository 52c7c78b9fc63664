using IotGateway.Commands;
using Npgsql;
using static IotGateway.Data.PostgreSql.PostgresSql;

namespace IotGateway.Data.PostgreSql;

// The command store on PostgreSQL: set-based statements over array parameters (one statement for a bulk request of
// 10,000 commands), sent together in one round trip where they can be; reads through EF.
public sealed class PostgresCommandStore(NpgsqlDataSource dataSource, IServiceScopeFactory scopes) : ICommandStore
{
    // Rows are claimed in device order, so two instances claiming overlapping devices cannot deadlock each other.
    // A TCP device's lane belongs to the instance that holds its connection: no other instance claims it, and that
    // one takes it over at once. (The clauses on "Devices" are the same in every claim below.)
    private const string ClaimLanesSql = """
        INSERT INTO "CommandLanes" ("DeviceId", "Owner", "LeaseUntil")
        SELECT d, $2, $3 FROM unnest($1::text[]) AS d
        WHERE NOT EXISTS (SELECT 1 FROM "Devices" AS v WHERE v."Id" = d AND v."Transport" = 'tcp' AND v."TcpInstance" IS DISTINCT FROM $2)
        ORDER BY d
        ON CONFLICT ("DeviceId") DO UPDATE SET "Owner" = excluded."Owner", "LeaseUntil" = excluded."LeaseUntil"
        WHERE "CommandLanes"."Owner" = excluded."Owner" OR "CommandLanes"."LeaseUntil" < $4
            OR EXISTS (SELECT 1 FROM "Devices" AS v WHERE v."Id" = excluded."DeviceId" AND v."Transport" = 'tcp' AND v."TcpInstance" = excluded."Owner")
        RETURNING "DeviceId"
        """;

    public Task<QueuedCommands> QueueAsync(IReadOnlyList<Command> commands, LaneLease lease, CancellationToken cancellationToken) =>
        InTransactionAsync(dataSource, async (connection, transaction) =>
        {
            var devices = commands.Select(c => c.DeviceId).Distinct(StringComparer.Ordinal).ToList();
            await using var batch = new NpgsqlBatch(connection, transaction)
            {
                BatchCommands =
                {
                    // Queueing transactions for the same device take turns, so a device's sequence numbers commit in
                    // order: otherwise a later number could commit first, be published, and the earlier one follow it.
                    // Devices share 256 lock buckets (one lock per bucket however large a bulk request), taken in
                    // order so two bulk requests cannot deadlock.
                    Statement("""
                        SELECT pg_advisory_xact_lock(7301, bucket)
                        FROM (SELECT DISTINCT hashtext(d) & 255 AS bucket FROM unnest($1::text[]) AS d ORDER BY bucket) AS b
                        """, TextArray(devices)),
                    // ORDER BY the input's position: sequences follow the order given.
                    Statement("""
                        INSERT INTO "Commands" ("Id", "DeviceId", "Name", "Payload", "Status", "TtlSeconds", "CreatedAt", "ExpiresAt", "RequestedBy", "BatchId")
                        SELECT id, device, name, payload, 'Pending', ttl, created, expires, requested_by, batch
                        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[], $8::text[], $9::text[])
                            WITH ORDINALITY AS u(id, device, name, payload, ttl, created, expires, requested_by, batch, position)
                        ORDER BY position
                        RETURNING "Id", "Sequence"
                        """,
                        TextArray([.. commands.Select(c => c.Id.ToString())]),
                        TextArray([.. commands.Select(c => c.DeviceId)]),
                        TextArray([.. commands.Select(c => c.Name)]),
                        TextArray([.. commands.Select(c => c.Payload)]),
                        IntegerArray([.. commands.Select(c => c.TtlSeconds)]),
                        BigintArray([.. commands.Select(c => (long?)c.CreatedAt.UtcTicks)]),
                        BigintArray([.. commands.Select(c => (long?)c.ExpiresAt.UtcTicks)]),
                        TextArray([.. commands.Select(c => c.RequestedBy)]),
                        TextArray([.. commands.Select(c => c.BatchId?.ToString())])),
                    Statement(ClaimLanesSql, TextArray(devices), Text(lease.Owner), Bigint(lease.Until.UtcTicks), Bigint(lease.Now.UtcTicks)),
                    // Who publishes each device's commands: a TCP device's connection holder (none while it is away: its
                    // commands wait for it), or the lane's holder.
                    Statement("""
                        SELECT x.d, CASE WHEN v."Transport" = 'tcp' THEN v."TcpInstance" ELSE l."Owner" END
                        FROM unnest($1::text[]) AS x(d)
                            LEFT JOIN "Devices" AS v ON v."Id" = x.d LEFT JOIN "CommandLanes" AS l ON l."DeviceId" = x.d
                        """, TextArray(devices)),
                    // Devices with older Pending commands than the first of these: their lanes read the database first.
                    Statement("""
                        SELECT DISTINCT c."DeviceId" FROM "Commands" AS c
                        WHERE c."DeviceId" = ANY($1) AND c."Status" = 'Pending' AND c."Sequence" <
                            (SELECT min(n."Sequence") FROM "Commands" AS n WHERE n."DeviceId" = c."DeviceId" AND n."Id" = ANY($2))
                        """, TextArray(devices), TextArray([.. commands.Select(c => c.Id.ToString())])),
                },
            };
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
            await reader.NextResultAsync(cancellationToken);
            var sequences = (await ReadAllAsync(reader, r => (Id: r.GetString(0), Sequence: r.GetInt64(1)), cancellationToken))
                .ToDictionary(x => x.Id, x => x.Sequence, StringComparer.Ordinal);
            foreach (var command in commands)
            {
                command.Sequence = sequences[command.Id.ToString()];
            }

            await reader.NextResultAsync(cancellationToken);
            await reader.NextResultAsync(cancellationToken);
            var claimed = new List<string>();
            var elsewhere = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            var owners = await ReadAllAsync(reader, r => (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1)), cancellationToken);
            await reader.NextResultAsync(cancellationToken);
            var behind = (await ReadAllAsync(reader, r => r.GetString(0), cancellationToken)).ToHashSet(StringComparer.Ordinal);
            foreach (var (deviceId, owner) in owners)
            {
                if (owner is null)
                {
                    continue;
                }

                if (owner == lease.Owner)
                {
                    claimed.Add(deviceId);
                }
                else
                {
                    (elsewhere.TryGetValue(owner, out var list) ? list : elsewhere[owner] = []).Add(deviceId);
                }
            }

            // As on SQLite: Behind is about the lanes this instance runs (another instance's lane reads the database anyway).
            behind.IntersectWith(claimed);
            return new QueuedCommands(commands, claimed, behind, elsewhere);
        }, cancellationToken);

    public async Task<Command?> NextPendingAsync(string deviceId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        return await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().NextPendingCommandAsync(deviceId, now, cancellationToken);
    }

    public Task<IReadOnlyList<string>> ClaimLanesAsync(IReadOnlyCollection<string> deviceIds, LaneLease lease, CancellationToken cancellationToken) =>
        InTransactionAsync<IReadOnlyList<string>>(dataSource, async (connection, transaction) =>
        {
            await using var claim = new NpgsqlCommand(ClaimLanesSql, connection, transaction)
            {
                Parameters = { TextArray([.. deviceIds]), Text(lease.Owner), Bigint(lease.Until.UtcTicks), Bigint(lease.Now.UtcTicks) },
            };
            await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
            return await ReadAllAsync(reader, r => r.GetString(0), cancellationToken);
        }, cancellationToken);

    public async Task<IReadOnlyList<string>> ClaimPendingLanesAsync(LaneLease lease, CancellationToken cancellationToken)
    {
        await using (var scope = scopes.CreateAsyncScope())
        {
            if (!await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().AnyCommandPendingAsync(lease.Now, cancellationToken))
            {
                return [];
            }
        }

        return await InTransactionAsync<IReadOnlyList<string>>(dataSource, async (connection, transaction) =>
        {
            await using var claim = new NpgsqlCommand("""
                INSERT INTO "CommandLanes" ("DeviceId", "Owner", "LeaseUntil")
                SELECT DISTINCT c."DeviceId", $1, $2 FROM "Commands" AS c WHERE c."Status" = 'Pending' AND c."ExpiresAt" > $3
                    AND NOT EXISTS (SELECT 1 FROM "Devices" AS v WHERE v."Id" = c."DeviceId" AND v."Transport" = 'tcp' AND v."TcpInstance" IS DISTINCT FROM $1)
                ORDER BY c."DeviceId"
                ON CONFLICT ("DeviceId") DO UPDATE SET "Owner" = excluded."Owner", "LeaseUntil" = excluded."LeaseUntil"
                WHERE "CommandLanes"."Owner" = excluded."Owner" OR "CommandLanes"."LeaseUntil" < $3
                    OR EXISTS (SELECT 1 FROM "Devices" AS v WHERE v."Id" = excluded."DeviceId" AND v."Transport" = 'tcp' AND v."TcpInstance" = excluded."Owner")
                RETURNING "DeviceId"
                """, connection, transaction)
            {
                Parameters = { Text(lease.Owner), Bigint(lease.Until.UtcTicks), Bigint(lease.Now.UtcTicks) },
            };
            await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
            return await ReadAllAsync(reader, r => r.GetString(0), cancellationToken);
        }, cancellationToken);
    }

    public async Task ReleaseLanesAsync(string owner, CancellationToken cancellationToken)
    {
        await using var release = dataSource.CreateCommand("""DELETE FROM "CommandLanes" WHERE "Owner" = $1""");
        release.Parameters.Add(Text(owner));
        await release.ExecuteNonQueryAsync(cancellationToken);
    }

    public Task<IReadOnlyList<CommandChanged>> MarkPublishedAsync(IReadOnlyList<(Guid Id, DateTimeOffset At)> published, CancellationToken cancellationToken) =>
        InTransactionAsync<IReadOnlyList<CommandChanged>>(dataSource, async (connection, transaction) =>
        {
            // A device may already have answered, or an operator cancelled the command: then only PublishedAt is filled in,
            // and never later than the answer it got.
            await using var update = new NpgsqlCommand("""
                UPDATE "Commands" AS c SET "PublishedAt" = LEAST(u.at, COALESCE(c."AnsweredAt", u.at)),
                    "Status" = CASE WHEN c."Status" = 'Pending' THEN 'Published' ELSE c."Status" END
                FROM unnest($1::text[], $2::bigint[]) AS u(id, at)
                WHERE c."Id" = u.id AND c."PublishedAt" IS NULL
                RETURNING c."Status", c."Id", c."DeviceId"
                """, connection, transaction)
            {
                Parameters =
                {
                    TextArray([.. published.Select(p => p.Id.ToString())]),
                    BigintArray([.. published.Select(p => (long?)p.At.UtcTicks)]),
                },
            };
            await using var reader = await update.ExecuteReaderAsync(cancellationToken);
            var rows = await ReadAllAsync(reader, r => (Status: r.GetString(0), Changed: new CommandChanged(Guid.Parse(r.GetString(1)), r.GetString(2))), cancellationToken);
            return [.. rows.Where(r => r.Status == nameof(CommandStatus.Published)).Select(r => r.Changed)];
        }, cancellationToken);

    public async Task<IReadOnlyList<CommandChanged>> ExpireDueAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using (var scope = scopes.CreateAsyncScope())
        {
            if (!await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().AnyCommandDueAsync(now, cancellationToken))
            {
                return [];
            }
        }

        return await InTransactionAsync<IReadOnlyList<CommandChanged>>(dataSource, async (connection, transaction) =>
        {
            await using var update = new NpgsqlCommand("""
                UPDATE "Commands" SET "Status" = 'Expired', "ExpiredAt" = $1
                WHERE "Status" IN ('Pending', 'Published') AND "ExpiresAt" <= $1
                RETURNING "Id", "DeviceId"
                """, connection, transaction)
            {
                Parameters = { Bigint(now.UtcTicks) },
            };
            await using var reader = await update.ExecuteReaderAsync(cancellationToken);
            return await ReadAllAsync(reader, r => new CommandChanged(Guid.Parse(r.GetString(0)), r.GetString(1)), cancellationToken);
        }, cancellationToken);
    }

    public Task<IReadOnlyList<CommandChanged>> CancelBatchAsync(Guid batchId, string? cancelledBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        InTransactionAsync<IReadOnlyList<CommandChanged>>(dataSource, async (connection, transaction) =>
        {
            await using var cancel = new NpgsqlCommand("""
                UPDATE "Commands" SET "Status" = 'Cancelled', "CancelledAt" = $2, "CancelledBy" = $3
                WHERE "BatchId" = $1 AND "Status" IN ('Pending', 'Published')
                RETURNING "Id", "DeviceId"
                """, connection, transaction)
            {
                Parameters = { Text(batchId.ToString()), Bigint(now.UtcTicks), Text(cancelledBy) },
            };
            await using var reader = await cancel.ExecuteReaderAsync(cancellationToken);
            return await ReadAllAsync(reader, r => new CommandChanged(Guid.Parse(r.GetString(0)), r.GetString(1)), cancellationToken);
        }, cancellationToken);

    public Task<CancelOutcome> CancelAsync(Guid id, string? cancelledBy, DateTimeOffset now, CancellationToken cancellationToken) =>
        InTransactionAsync(dataSource, async (connection, transaction) =>
        {
            await using var cancel = new NpgsqlCommand("""
                UPDATE "Commands" SET "Status" = 'Cancelled', "CancelledAt" = $2, "CancelledBy" = $3
                WHERE "Id" = $1 AND "Status" IN ('Pending', 'Published')
                RETURNING "DeviceId"
                """, connection, transaction)
            {
                Parameters = { Text(id.ToString()), Bigint(now.UtcTicks), Text(cancelledBy) },
            };
            if (await cancel.ExecuteScalarAsync(cancellationToken) is string deviceId)
            {
                return new CancelOutcome(CancelResult.Cancelled, DeviceId: deviceId);
            }

            await using var select = new NpgsqlCommand("""SELECT "Status" FROM "Commands" WHERE "Id" = $1""", connection, transaction)
            {
                Parameters = { Text(id.ToString()) },
            };
            return await select.ExecuteScalarAsync(cancellationToken) is string status && Enum.TryParse<CommandStatus>(status, out var parsed)
                ? new CancelOutcome(CancelResult.AlreadyFinished, parsed)
                : new CancelOutcome(CancelResult.NotFound);
        }, cancellationToken);

    // Inside an ingest batch's transaction: each answer finishes an open command of its device, or is ignored. One
    // statement per answer, in arrival order (a second answer to the same command is the one ignored).
    internal static async Task AnswerAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IReadOnlyList<CommandAnswerWrite> answers,
        DateTimeOffset at, CancellationToken cancellationToken)
    {
        if (answers.Count == 0)
        {
            return;
        }

        await using (var batch = new NpgsqlBatch(connection, transaction))
        {
            foreach (var answer in answers)
            {
                batch.BatchCommands.Add(Statement("""
                    UPDATE "Commands" SET "Status" = $1, "Result" = $2, "Response" = $3, "AnsweredAt" = $4
                    WHERE "Id" = $5 AND "DeviceId" = $6 AND "Status" IN ('Pending', 'Published')
                    RETURNING "CreatedAt"
                    """, Text(answer.Status.ToString()), Text(answer.Result), Text(answer.Response), Bigint(at.UtcTicks),
                    Text(answer.CommandId.ToString()), Text(answer.DeviceId)));
            }

            await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
            foreach (var answer in answers)
            {
                answer.FinishedCreatedAt = await reader.ReadAsync(cancellationToken) ? new DateTimeOffset(reader.GetInt64(0), TimeSpan.Zero) : null;
                answer.CurrentStatus = null;
                await reader.NextResultAsync(cancellationToken);
            }
        }

        var ignored = answers.Where(a => a.FinishedCreatedAt is null).ToList();
        if (ignored.Count == 0)
        {
            return;
        }

        await using var select = new NpgsqlCommand("""
            SELECT "Id", "DeviceId", "Status" FROM "Commands" WHERE "Id" = ANY($1)
            """, connection, transaction)
        {
            Parameters = { TextArray([.. ignored.Select(a => a.CommandId.ToString())]) },
        };
        await using var statuses = await select.ExecuteReaderAsync(cancellationToken);
        var known = await ReadAllAsync(statuses, r => (Id: r.GetString(0), DeviceId: r.GetString(1), Status: r.GetString(2)), cancellationToken);
        foreach (var answer in ignored)
        {
            var row = known.FirstOrDefault(k => k.Id == answer.CommandId.ToString() && k.DeviceId == answer.DeviceId);
            answer.CurrentStatus = row.Status is { } status && Enum.TryParse<CommandStatus>(status, out var parsed) ? parsed : null;
        }
    }
}
