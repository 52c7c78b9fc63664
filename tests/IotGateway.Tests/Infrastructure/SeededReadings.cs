using IotGateway.Protocol;
using Microsoft.Data.Sqlite;

namespace IotGateway.Tests.Infrastructure;

// Readings written straight into the gateway's SQLite file, as its ingest would write them (UTC ticks, the format as
// text), with the device row and its counter: for data a test cannot publish (old timestamps, payloads ingest would
// classify differently) or could not publish fast enough (hundreds of thousands of rows).
public static class SeededReadings
{
    public sealed record Reading(DateTimeOffset ReceivedAt, string Payload, string Format = "Json", string? MessageKey = null);

    public static void Insert(string databasePath, string deviceId, IEnumerable<Reading> readings)
    {
        using var connection = new SqliteConnection($"Data Source={databasePath};Pooling=False;Default Timeout=30");
        connection.Open();
        using var transaction = connection.BeginTransaction();
        using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = """
            INSERT INTO "Telemetry" ("DeviceId", "ReceivedAt", "Topic", "Payload", "Format", "MessageKey")
            VALUES ($device, $at, $topic, $payload, $format, $key)
            """;
        var device = insert.Parameters.Add("$device", SqliteType.Text);
        var at = insert.Parameters.Add("$at", SqliteType.Integer);
        var topic = insert.Parameters.Add("$topic", SqliteType.Text);
        var payload = insert.Parameters.Add("$payload", SqliteType.Text);
        var format = insert.Parameters.Add("$format", SqliteType.Text);
        var key = insert.Parameters.Add("$key", SqliteType.Text);
        insert.Prepare();
        long count = 0;
        long first = long.MaxValue;
        long last = long.MinValue;
        foreach (var reading in readings)
        {
            device.Value = deviceId;
            at.Value = reading.ReceivedAt.UtcTicks;
            topic.Value = TopicRoots.Default.For(deviceId).Data;
            payload.Value = reading.Payload;
            format.Value = reading.Format;
            key.Value = (object?)reading.MessageKey ?? DBNull.Value;
            insert.ExecuteNonQuery();
            count++;
            first = Math.Min(first, reading.ReceivedAt.UtcTicks);
            last = Math.Max(last, reading.ReceivedAt.UtcTicks);
        }

        using var upsert = connection.CreateCommand();
        upsert.Transaction = transaction;
        upsert.CommandText = """
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "LastSeen", "TelemetryCount", "PendingCommands")
            VALUES ($device, 0, $first, $last, $count, 0)
            ON CONFLICT ("Id") DO UPDATE SET "TelemetryCount" = "TelemetryCount" + $count
            """;
        upsert.Parameters.AddWithValue("$device", deviceId);
        upsert.Parameters.AddWithValue("$first", count == 0 ? DateTimeOffset.UtcNow.UtcTicks : first);
        upsert.Parameters.AddWithValue("$last", count == 0 ? DateTimeOffset.UtcNow.UtcTicks : last);
        upsert.Parameters.AddWithValue("$count", count);
        upsert.ExecuteNonQuery();
        transaction.Commit();
    }

    // Rows and the device's counter, as a second process reads them.
    public static (long Rows, long Counter) Count(string databasePath, string deviceId)
    {
        using var connection = new SqliteConnection($"Data Source={databasePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT (SELECT COUNT(*) FROM "Telemetry" WHERE "DeviceId" = $d), COALESCE((SELECT "TelemetryCount" FROM "Devices" WHERE "Id" = $d), -1)
            """;
        command.Parameters.AddWithValue("$d", deviceId);
        using var reader = command.ExecuteReader();
        reader.Read();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    public static long Scalar(string databasePath, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={databasePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
