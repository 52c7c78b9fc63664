using IotGateway.Data;
using Microsoft.Data.Sqlite;

namespace IotGateway.Telemetry;

// The ingest writer's statements for one batch. The write gate prepares each once for the life of its connection;
// the fields only spare the per-message lookup.
internal sealed class BatchStatements(WriteTransaction write)
{
    private static readonly string[] FormatNames = Enum.GetNames<PayloadFormat>();

    private SqliteCommand? _insertReading;
    private SqliteCommand? _setPresence;
    private SqliteCommand? _answerCommand;
    private SqliteCommand? _recordActivity;
    private SqliteCommand? _commandStatus;

    public bool InsertReading(string deviceId, DateTimeOffset receivedAt, string topic, ClassifiedPayload payload, string? messageKey)
    {
        // The UTF-8 bytes are bound as a blob and cast: SQLite stores them as TEXT without re-encoding.
        var command = _insertReading ??= Prepare(
            """
            INSERT INTO "Telemetry" ("DeviceId", "ReceivedAt", "Topic", "Payload", "Format", "MessageKey")
            VALUES ($device, $at, $topic, CAST($payload AS TEXT), $format, $key)
            ON CONFLICT DO NOTHING
            """, "$device", "$at", "$topic", "$payload", "$format", "$key");
        var parameters = command.Parameters;
        parameters[0].Value = deviceId;
        parameters[1].Value = receivedAt.UtcTicks;
        parameters[2].Value = topic;
        parameters[3].Value = payload.Utf8 is { } utf8 ? utf8 : payload.Base64;
        parameters[4].Value = FormatNames[(int)payload.Format];
        parameters[5].Value = (object?)messageKey ?? DBNull.Value;
        return command.ExecuteNonQuery() == 1;
    }

    public void SetPresence(string deviceId, bool signedIn, DateTimeOffset at, DateTimeOffset? seenAt)
    {
        var command = _setPresence ??= Prepare(
            """
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "LastSeen", "SignedInAt", "SignedOutAt", "TelemetryCount", "PendingCommands")
            VALUES ($device, $signedIn, $at, $seen, CASE WHEN $signedIn THEN $at END, CASE WHEN $signedIn THEN NULL ELSE $at END, 0, 0)
            ON CONFLICT ("Id") DO UPDATE SET
                "SignedInAt" = CASE WHEN excluded."SignedIn" AND NOT "SignedIn" THEN $at ELSE "SignedInAt" END,
                "SignedOutAt" = CASE WHEN NOT excluded."SignedIn" AND "SignedIn" THEN $at ELSE "SignedOutAt" END,
                "SignedIn" = excluded."SignedIn",
                "LastSeen" = CASE WHEN $seen IS NOT NULL AND ("LastSeen" IS NULL OR "LastSeen" < $seen) THEN $seen ELSE "LastSeen" END
            """, "$device", "$signedIn", "$at", "$seen");
        Bind(command, deviceId, signedIn, at.UtcTicks, seenAt?.UtcTicks);
        command.ExecuteNonQuery();
    }

    // Returns the command's creation time when this answer finished it; null when it was unknown or already finished.
    public DateTimeOffset? AnswerCommand(Guid id, string deviceId, CommandStatus status, string result, string response, DateTimeOffset at)
    {
        var command = _answerCommand ??= Prepare(
            """
            UPDATE "Commands" SET "Status" = $status, "Result" = $result, "Response" = $response, "AnsweredAt" = $at
            WHERE "Id" = $id AND "DeviceId" = $device AND "Status" IN ('Pending', 'Published')
            RETURNING "CreatedAt"
            """, "$status", "$result", "$response", "$at", "$id", "$device");
        Bind(command, status.ToString(), result, response, at.UtcTicks, id.ToString(), deviceId);
        return command.ExecuteScalar() is long ticks ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;
    }

    public CommandStatus? CommandStatus(Guid id, string deviceId)
    {
        var command = _commandStatus ??= Prepare("""SELECT "Status" FROM "Commands" WHERE "Id" = $id AND "DeviceId" = $device""", "$id", "$device");
        Bind(command, id.ToString(), deviceId);
        return command.ExecuteScalar() is string status && Enum.TryParse<Data.CommandStatus>(status, out var parsed) ? parsed : null;
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
