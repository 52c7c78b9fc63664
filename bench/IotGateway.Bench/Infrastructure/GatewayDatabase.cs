using Microsoft.Data.Sqlite;
using Npgsql;

namespace IotGateway.Bench.Infrastructure;

/// <summary>Read-only looks into the gateway's SQLite file while it runs (WAL: readers never block its writer), or into
/// its PostgreSQL database when the path is an Npgsql connection string (Host=…).</summary>
public static class GatewayDatabase
{
    private static bool IsPostgres(string database) => database.StartsWith("Host=", StringComparison.Ordinal);

    private static long? PostgresScalar(string connectionString, string sql)
    {
        try
        {
            using var connection = new NpgsqlConnection(connectionString);
            connection.Open();
            using var command = new NpgsqlCommand(sql, connection);
            return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (PostgresException)
        {
            return null; // not migrated yet
        }
    }

    /// <summary>
    /// Readings the gateway has committed: the sum of Devices.TelemetryCount, which its ingest keeps in the same
    /// transaction as the readings. Null while the file or the table does not exist yet, or is busy being created.
    /// </summary>
    public static long? TryReadStoredReadings(string databasePath)
    {
        if (IsPostgres(databasePath))
        {
            return PostgresScalar(databasePath, """SELECT COALESCE(SUM("TelemetryCount"),0) FROM "Devices" """);
        }

        if (!File.Exists(databasePath))
        {
            return null;
        }

        try
        {
            using var connection = OpenReadOnly(databasePath);
            using var command = connection.CreateCommand();
            command.CommandText = """SELECT COALESCE(SUM("TelemetryCount"),0) FROM "Devices" """;
            return (long)command.ExecuteScalar()!;
        }
        catch (SqliteException)
        {
            // No table yet (migrations running), or locked while the gateway switches the file to WAL.
            return null;
        }
    }

    public static long Scalar(string databasePath, string sql)
    {
        if (IsPostgres(databasePath))
        {
            return PostgresScalar(databasePath, sql) ?? throw new BenchFailure($"Cannot read the gateway's database: {sql}");
        }

        using var connection = OpenReadOnly(databasePath);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    // No pooling: each look is a fresh connection, so nothing of ours stays open between polls.
    private static SqliteConnection OpenReadOnly(string databasePath)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadOnly,
            Pooling = false,
        }.ToString());
        connection.Open();
        return connection;
    }

    /// <summary>Folds the write-ahead log into the file (after a seeding, so what is timed next does not pay for it).</summary>
    public static void Checkpoint(string databasePath)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
        command.ExecuteNonQuery();
    }
}
