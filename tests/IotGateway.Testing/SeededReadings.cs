using System.Data.Common;
using IotGateway.Protocol;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace IotGateway.Testing;

// Readings written straight into a gateway's database (a SQLite file or PostgreSQL), as its ingest writes them (UTC
// ticks, the format as text, the device's data topic), with each device's row and counter kept true: for data a test
// cannot publish (old timestamps, payloads ingest would classify differently) or could not publish fast enough (the
// benchmarks' million rows). One transaction: a prepared insert on SQLite, a binary COPY on PostgreSQL.
public static class SeededReadings
{
    public sealed record Reading(DateTimeOffset ReceivedAt, string Payload, string Format = "Json", string? MessageKey = null);

    // One device's readings; its row is there afterwards even when there are none.
    public static void Insert(GatewayStorage storage, string deviceId, IEnumerable<Reading> readings) =>
        Write(storage, readings.Select(r => (deviceId, r)), deviceId, CancellationToken.None);

    // The tests' gateways on their default provider, a SQLite file.
    public static void Insert(string sqlitePath, string deviceId, IEnumerable<Reading> readings) =>
        Insert(GatewayStorage.Sqlite(sqlitePath), deviceId, readings);

    // Readings of any devices, in the order given (which sets their ids).
    public static void Insert(GatewayStorage storage, IEnumerable<(string DeviceId, Reading Reading)> readings, CancellationToken cancellationToken = default) =>
        Write(storage, readings, emptyDevice: null, cancellationToken);

    // A device's rows and its counter (-1 without a device row), read together.
    public static (long Rows, long Counter) Count(GatewayStorage storage, string deviceId) =>
        storage.Pair("""
            SELECT (SELECT COUNT(*) FROM "Telemetry" WHERE "DeviceId" = $d), COALESCE((SELECT "TelemetryCount" FROM "Devices" WHERE "Id" = $d), -1)
            """, deviceId);

    private static void Write(GatewayStorage storage, IEnumerable<(string DeviceId, Reading Reading)> readings, string? emptyDevice, CancellationToken cancellationToken)
    {
        var devices = new Dictionary<string, Seen>(StringComparer.Ordinal);
        if (emptyDevice is not null)
        {
            devices[emptyDevice] = Seen.Nothing;
        }

        // Counted as they are written, so a benchmark's rows are never held in memory.
        IEnumerable<(string DeviceId, Reading Reading)> Counted()
        {
            var written = 0L;
            foreach (var row in readings)
            {
                if (++written % 10_000 == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested(); // rolled back
                }

                devices[row.DeviceId] = devices.GetValueOrDefault(row.DeviceId, Seen.Nothing).And(row.Reading.ReceivedAt.UtcTicks);
                yield return row;
            }
        }

        using var connection = storage.Open();
        using var transaction = connection.BeginTransaction();
        if (connection is NpgsqlConnection pg)
        {
            CopyToPostgres(pg, Counted());
        }
        else
        {
            InsertIntoSqlite((SqliteConnection)connection, (SqliteTransaction)transaction, Counted());
        }

        UpsertDevices(connection, transaction, devices);
        transaction.Commit();
    }

    private static void InsertIntoSqlite(SqliteConnection connection, SqliteTransaction transaction, IEnumerable<(string DeviceId, Reading Reading)> readings)
    {
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
        foreach (var (deviceId, reading) in readings)
        {
            device.Value = deviceId;
            at.Value = reading.ReceivedAt.UtcTicks;
            topic.Value = TopicRoots.DeviceTopic(TopicRoots.DefaultData, deviceId);
            payload.Value = reading.Payload;
            format.Value = reading.Format;
            key.Value = (object?)reading.MessageKey ?? DBNull.Value;
            insert.ExecuteNonQuery();
        }
    }

    private static void CopyToPostgres(NpgsqlConnection connection, IEnumerable<(string DeviceId, Reading Reading)> readings)
    {
        using var copy = connection.BeginBinaryImport("""
            COPY "Telemetry" ("DeviceId", "ReceivedAt", "Topic", "Payload", "Format", "MessageKey") FROM STDIN (FORMAT BINARY)
            """);
        foreach (var (deviceId, reading) in readings)
        {
            copy.StartRow();
            copy.Write(deviceId, NpgsqlDbType.Varchar);
            copy.Write(reading.ReceivedAt.UtcTicks, NpgsqlDbType.Bigint);
            copy.Write(TopicRoots.DeviceTopic(TopicRoots.DefaultData, deviceId), NpgsqlDbType.Text);
            copy.Write(reading.Payload, NpgsqlDbType.Text);
            copy.Write(reading.Format, NpgsqlDbType.Varchar);
            if (reading.MessageKey is { } key)
            {
                copy.Write(key, NpgsqlDbType.Text);
            }
            else
            {
                copy.WriteNull();
            }
        }

        copy.Complete();
    }

    // A device seen first adds its row; one the gateway (or an earlier seeding) knows has its counter raised.
    private static void UpsertDevices(DbConnection connection, DbTransaction transaction, Dictionary<string, Seen> devices)
    {
        using var upsert = connection.CreateCommand();
        upsert.Transaction = transaction;
        upsert.CommandText = """
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "LastSeen", "TelemetryCount", "PendingCommands")
            VALUES (@id, @signedIn, @first, @last, @count, 0)
            ON CONFLICT ("Id") DO UPDATE SET "TelemetryCount" = "Devices"."TelemetryCount" + excluded."TelemetryCount"
            """;
        var id = Parameter(upsert, "id");
        Parameter(upsert, "signedIn").Value = false;
        var first = Parameter(upsert, "first");
        var last = Parameter(upsert, "last");
        var count = Parameter(upsert, "count");
        var now = DateTimeOffset.UtcNow.UtcTicks;
        foreach (var (deviceId, seen) in devices)
        {
            id.Value = deviceId;
            first.Value = seen.Count == 0 ? now : seen.First;
            last.Value = seen.Count == 0 ? now : seen.Last;
            count.Value = seen.Count;
            upsert.ExecuteNonQuery();
        }
    }

    private static DbParameter Parameter(DbCommand command, string name)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        command.Parameters.Add(parameter);
        return parameter;
    }

    private readonly record struct Seen(long Count, long First, long Last)
    {
        public static Seen Nothing => new(0, long.MaxValue, long.MinValue);

        public Seen And(long ticks) => new(Count + 1, Math.Min(First, ticks), Math.Max(Last, ticks));
    }
}
