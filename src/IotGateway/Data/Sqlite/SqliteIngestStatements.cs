using System.Text;
using IotGateway.Ingest;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace IotGateway.Data.Sqlite;

// The SQLite ingest store's statements for one batch (a device's answers go through SqliteCommandStore). The write gate prepares each once for the life of its connection;
// the fields only spare the per-message lookup.
internal sealed class SqliteIngestStatements(WriteTransaction write)
{
    private static readonly string[] FormatNames = Enum.GetNames<PayloadFormat>();

    private SqliteCommand? _setPresence;
    private SqliteCommand? _recordActivity;

    // The one statement run per reading goes through SQLite's own API: bound by index from a reused UTF-8 buffer, it
    // allocates nothing, where the SqliteCommand path allocated ~760 bytes (parameter binders, UTF-8 copies, a data
    // reader) and took 1.5-2.5 µs more per row (100,000 rows into this table: 7.8-9.6 → 6.8-7.4 µs each).
    private const string InsertReadingSql =
        """
        INSERT INTO "Telemetry" ("DeviceId", "ReceivedAt", "Topic", "Payload", "Format", "MessageKey")
        VALUES (?1, ?2, ?3, CAST(?4 AS TEXT), ?5, ?6)
        ON CONFLICT DO NOTHING
        """;

    private static readonly byte[][] FormatNamesUtf8 = [.. FormatNames.Select(Encoding.UTF8.GetBytes)];

    private sqlite3_stmt? _insertReadingNative;
    private byte[] _utf8 = new byte[1024];

    public bool InsertReading(string deviceId, DateTimeOffset receivedAt, string topic, ClassifiedPayload payload, string? messageKey)
    {
        var statement = _insertReadingNative ??= write.PrepareNative(InsertReadingSql);
        var connection = write.NativeConnection;
        try
        {
            // The UTF-8 bytes are bound as a blob and cast: SQLite stores them as TEXT without re-encoding.
            Check(BindText(statement, 1, deviceId), connection);
            Check(raw.sqlite3_bind_int64(statement, 2, receivedAt.UtcTicks), connection);
            Check(BindText(statement, 3, topic), connection);
            Check(payload.Utf8 is { } utf8 ? raw.sqlite3_bind_blob(statement, 4, utf8) : BindText(statement, 4, payload.Base64!), connection);
            Check(raw.sqlite3_bind_text(statement, 5, FormatNamesUtf8[(int)payload.Format]), connection);
            Check(messageKey is null ? raw.sqlite3_bind_null(statement, 6) : BindText(statement, 6, messageKey), connection);
            var rc = raw.sqlite3_step(statement);
            if (rc != raw.SQLITE_DONE)
            {
                SqliteException.ThrowExceptionForRC(rc, connection);
            }

            return raw.sqlite3_changes(connection) == 1;
        }
        finally
        {
            raw.sqlite3_reset(statement);
        }
    }

    // SQLite copies the bytes (SQLITE_TRANSIENT), so the buffer is free again when this returns.
    private int BindText(sqlite3_stmt statement, int index, string value)
    {
        var needed = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (needed > _utf8.Length)
        {
            _utf8 = new byte[Math.Max(needed, _utf8.Length * 2)];
        }

        var length = Encoding.UTF8.GetBytes(value, _utf8);
        return raw.sqlite3_bind_text(statement, index, _utf8.AsSpan(0, length));
    }

    private static void Check(int rc, sqlite3 connection)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, connection);
        }
    }

    // False when the change was skipped (see PresenceWrite).
    public bool SetPresence(PresenceWrite presence)
    {
        var command = _setPresence ??= Prepare(
            """
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "LastSeen", "SignedInAt", "SignedOutAt", "TelemetryCount", "PendingCommands",
                "Transport", "TcpInstance")
            VALUES ($device, $signedIn, $at, $seen, CASE WHEN $signedIn THEN $at END, CASE WHEN $signedIn THEN NULL ELSE $at END, 0, 0,
                COALESCE($via, 'mqtt'), CASE WHEN $via = 'tcp' AND $signedIn THEN $instance END)
            ON CONFLICT ("Id") DO UPDATE SET
                "SignedInAt" = CASE WHEN excluded."SignedIn" AND NOT "SignedIn" THEN $at ELSE "SignedInAt" END,
                "SignedOutAt" = CASE WHEN NOT excluded."SignedIn" AND "SignedIn" THEN $at ELSE "SignedOutAt" END,
                "SignedIn" = excluded."SignedIn",
                "LastSeen" = CASE WHEN $seen IS NOT NULL AND ("LastSeen" IS NULL OR "LastSeen" < $seen) THEN $seen ELSE "LastSeen" END,
                "Transport" = COALESCE($via, "Transport"),
                "TcpInstance" = CASE WHEN $via IS NULL THEN "TcpInstance" WHEN $via = 'tcp' AND $signedIn THEN $instance ELSE NULL END
            WHERE NOT (COALESCE($via, '') = 'tcp' AND NOT $signedIn AND "TcpInstance" IS NOT $instance)
            """, "$device", "$signedIn", "$at", "$seen", "$via", "$instance");
        Bind(command, presence.DeviceId, presence.SignedIn, presence.At.UtcTicks, presence.SeenAt?.UtcTicks, presence.Via, presence.Instance);
        return command.ExecuteNonQuery() > 0;
    }

    public void RecordActivity(string deviceId, int readings, DateTimeOffset? lastSeen, DateTimeOffset now)
    {
        var command = _recordActivity ??= Prepare(
            """
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "LastSeen", "TelemetryCount", "PendingCommands")
            VALUES ($device, 0, $now, $seen, $readings, 0)
            ON CONFLICT ("Id") DO UPDATE SET
                "TelemetryCount" = "TelemetryCount" + $readings,
                "LastSeen" = CASE WHEN $seen IS NOT NULL AND ("LastSeen" IS NULL OR "LastSeen" < $seen) THEN $seen ELSE "LastSeen" END
            """, "$device", "$now", "$seen", "$readings");
        Bind(command, deviceId, now.UtcTicks, lastSeen?.UtcTicks, readings);
        command.ExecuteNonQuery();
    }

    private SqliteCommand Prepare(string sql, params string[] parameters) => write.Prepare(sql, parameters);

    private static void Bind(SqliteCommand command, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        }
    }
}
