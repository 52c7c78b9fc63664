using System.Text;
using IotGateway.Ingest;
using Npgsql;
using static IotGateway.Data.PostgreSql.PostgresSql;

namespace IotGateway.Data.PostgreSql;

// One batch, one PostgreSQL transaction, in a few round trips: every reading in one INSERT over arrays (duplicates
// dropped by the unique index, ON CONFLICT DO NOTHING), presence statements batched, the answers, then every seen
// device's activity in one upsert. Rows of Devices are written in device order, so two instances' batches do not
// deadlock on them (and when they do all the same, the transaction runs again).
public sealed class PostgresIngestStore(NpgsqlDataSource dataSource) : IIngestStore
{
    private static readonly string[] FormatNames = Enum.GetNames<PayloadFormat>();

    public Task StoreAsync(IngestBatch batch, CancellationToken cancellationToken) =>
        InTransactionAsync(dataSource, async (connection, transaction) =>
        {
            var readings = await InsertReadingsAsync(connection, transaction, batch.Readings, cancellationToken);
            await SetPresenceAsync(connection, transaction, batch.Presence, cancellationToken);
            await PostgresCommandStore.AnswerAsync(connection, transaction, batch.Answers, batch.Now, cancellationToken);
            await RecordActivityAsync(connection, transaction, batch, readings, cancellationToken);
            return true;
        }, cancellationToken);

    // Returns the readings stored per device.
    private static async Task<Dictionary<string, int>> InsertReadingsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction,
        List<ReadingWrite> readings, CancellationToken cancellationToken)
    {
        var stored = new Dictionary<string, int>(StringComparer.Ordinal);
        if (readings.Count == 0)
        {
            return stored;
        }

        await using var insert = new NpgsqlCommand("""
            INSERT INTO "Telemetry" ("DeviceId", "ReceivedAt", "Topic", "Payload", "Format", "MessageKey")
            SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
            ON CONFLICT DO NOTHING
            RETURNING "DeviceId", "MessageKey"
            """, connection, transaction)
        {
            Parameters =
            {
                TextArray([.. readings.Select(r => r.DeviceId)]),
                BigintArray([.. readings.Select(r => (long?)r.ReceivedAt.UtcTicks)]),
                TextArray([.. readings.Select(r => r.Topic)]),
                TextArray([.. readings.Select(r => Stored(r.Payload).Text)]),
                TextArray([.. readings.Select(r => FormatNames[(int)Stored(r.Payload).Format])]),
                TextArray([.. readings.Select(r => r.MessageKey)]),
            },
        };
        // Which keyed readings went in: the first of each (device, key) in the batch, unless one was stored before.
        var inserted = new HashSet<(string, string)>();
        await using (var reader = await insert.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var deviceId = reader.GetString(0);
                stored[deviceId] = stored.GetValueOrDefault(deviceId) + 1;
                if (!reader.IsDBNull(1))
                {
                    inserted.Add((deviceId, reader.GetString(1)));
                }
            }
        }

        foreach (var reading in readings)
        {
            reading.Stored = reading.MessageKey is not { } key || inserted.Remove((reading.DeviceId, key));
        }

        return stored;
    }

    // PostgreSQL's text cannot hold NUL: a text reading with one is kept as the bytes it is (base64), not refused.
    private static (string Text, PayloadFormat Format) Stored(ClassifiedPayload payload) => payload switch
    {
        { Utf8: { } utf8, Format: PayloadFormat.Text } when utf8.AsSpan().Contains((byte)0) => (Convert.ToBase64String(utf8), PayloadFormat.Binary),
        { Utf8: { } utf8 } => (Encoding.UTF8.GetString(utf8), payload.Format),
        _ => (payload.Base64!, payload.Format),
    };

    private static async Task SetPresenceAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, List<PresenceWrite> presence,
        CancellationToken cancellationToken)
    {
        if (presence.Count == 0)
        {
            return;
        }

        await using var batch = new NpgsqlBatch(connection, transaction);
        // In device order; each device's changes keep their arrival order (a stable sort).
        var ordered = presence.OrderBy(p => p.DeviceId, StringComparer.Ordinal).ToList();
        foreach (var change in ordered)
        {
            // $5: the transport the change says the device uses (null: it does not say); $6: the instance holding a TCP
            // device's connection. A TCP sign-out from an instance that no longer holds the device changes nothing.
            batch.BatchCommands.Add(Statement("""
                INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "LastSeen", "SignedInAt", "SignedOutAt", "TelemetryCount", "PendingCommands",
                    "Transport", "TcpInstance")
                VALUES ($1, $2, $3, $4, CASE WHEN $2 THEN $3 END, CASE WHEN $2 THEN NULL ELSE $3 END, 0, 0,
                    COALESCE($5, 'mqtt'), CASE WHEN $5 = 'tcp' AND $2 THEN $6 END)
                ON CONFLICT ("Id") DO UPDATE SET
                    "SignedInAt" = CASE WHEN excluded."SignedIn" AND NOT "Devices"."SignedIn" THEN excluded."FirstSeen" ELSE "Devices"."SignedInAt" END,
                    "SignedOutAt" = CASE WHEN NOT excluded."SignedIn" AND "Devices"."SignedIn" THEN excluded."FirstSeen" ELSE "Devices"."SignedOutAt" END,
                    "SignedIn" = excluded."SignedIn",
                    "LastSeen" = CASE WHEN excluded."LastSeen" IS NOT NULL AND ("Devices"."LastSeen" IS NULL OR "Devices"."LastSeen" < excluded."LastSeen")
                        THEN excluded."LastSeen" ELSE "Devices"."LastSeen" END,
                    "Transport" = COALESCE($5, "Devices"."Transport"),
                    "TcpInstance" = CASE WHEN $5 IS NULL THEN "Devices"."TcpInstance" WHEN $5 = 'tcp' AND $2 THEN $6 ELSE NULL END
                WHERE NOT ($5 IS NOT DISTINCT FROM 'tcp' AND NOT $2 AND "Devices"."TcpInstance" IS DISTINCT FROM $6)
                """, Text(change.DeviceId), Boolean(change.SignedIn), Bigint(change.At.UtcTicks), Bigint(change.SeenAt?.UtcTicks),
                Text(change.Via), Text(change.Instance)));
        }

        await batch.ExecuteNonQueryAsync(cancellationToken);
        for (var i = 0; i < ordered.Count; i++)
        {
            ordered[i].Applied = batch.BatchCommands[i].RecordsAffected > 0;
        }
    }

    private static async Task RecordActivityAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, IngestBatch batch,
        Dictionary<string, int> readings, CancellationToken cancellationToken)
    {
        if (batch.Devices.Count == 0)
        {
            return;
        }

        var devices = batch.Devices.OrderBy(d => d.Key, StringComparer.Ordinal).ToList();
        await using var upsert = new NpgsqlCommand("""
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "LastSeen", "TelemetryCount", "PendingCommands")
            SELECT id, false, $4, seen, readings, 0 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS u(id, seen, readings, position)
            ORDER BY position
            ON CONFLICT ("Id") DO UPDATE SET
                "TelemetryCount" = "Devices"."TelemetryCount" + excluded."TelemetryCount",
                "LastSeen" = CASE WHEN excluded."LastSeen" IS NOT NULL AND ("Devices"."LastSeen" IS NULL OR "Devices"."LastSeen" < excluded."LastSeen")
                    THEN excluded."LastSeen" ELSE "Devices"."LastSeen" END
            """, connection, transaction)
        {
            Parameters =
            {
                TextArray([.. devices.Select(d => d.Key)]),
                BigintArray([.. devices.Select(d => d.Value?.UtcTicks)]),
                BigintArray([.. devices.Select(d => (long?)readings.GetValueOrDefault(d.Key))]),
                Bigint(batch.Now.UtcTicks),
            },
        };
        await upsert.ExecuteNonQueryAsync(cancellationToken);
    }
}
