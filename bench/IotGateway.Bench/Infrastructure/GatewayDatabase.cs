using Microsoft.Data.Sqlite;

namespace IotGateway.Bench.Infrastructure;

/// <summary>Read-only looks into the gateway's SQLite file while it runs (WAL: readers never block its writer).</summary>
public static class GatewayDatabase
{
    /// <summary>
    /// Readings the gateway has committed: the sum of Devices.TelemetryCount, which its ingest keeps in the same
    /// transaction as the readings. Null while the file or the table does not exist yet, or is busy being created.
    /// </summary>
    public static long? TryReadStoredReadings(string databasePath)
    {
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
}
