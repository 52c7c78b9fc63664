using Microsoft.Data.Sqlite;
using Npgsql;

namespace IotGateway.Tests.Infrastructure;

// A gateway's database as a second process sees it: a SQLite file or a PostgreSQL database.
public sealed record GatewayStorage(string? SqlitePath, string? PostgresConnectionString)
{
    public static GatewayStorage Sqlite(string path) => new(path, null);

    public static GatewayStorage Postgres(string connectionString) => new(null, connectionString);

    // Runs a statement as another process would (a crash's leftovers, say); returns the rows it changed.
    public int Execute(string sql)
    {
        if (PostgresConnectionString is { } pg)
        {
            using var connection = new NpgsqlConnection(pg);
            connection.Open();
            using var command = new NpgsqlCommand(sql, connection);
            return command.ExecuteNonQuery();
        }

        using var sqlite = new SqliteConnection($"Data Source={SqlitePath};Pooling=False");
        sqlite.Open();
        using var statement = sqlite.CreateCommand();
        statement.CommandText = sql;
        return statement.ExecuteNonQuery();
    }

    // One number from a query (parameter $d: the device id, when given).
    public long Scalar(string sql, string? deviceId = null)
    {
        if (PostgresConnectionString is { } pg)
        {
            using var connection = new NpgsqlConnection(pg);
            connection.Open();
            using var command = new NpgsqlCommand(sql.Replace("$d", "@d", StringComparison.Ordinal), connection);
            if (deviceId is not null)
            {
                command.Parameters.AddWithValue("d", deviceId);
            }

            return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }

        using var sqlite = new SqliteConnection($"Data Source={SqlitePath};Mode=ReadOnly;Pooling=False");
        sqlite.Open();
        using var query = sqlite.CreateCommand();
        query.CommandText = sql;
        if (deviceId is not null)
        {
            query.Parameters.AddWithValue("$d", deviceId);
        }

        return Convert.ToInt64(query.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}

// A device's readings as a second process sees them in the gateway's database: the rows, and the distinct message
// ids among them (equal when nothing was stored twice). The API's telemetryCount is a counter; the rows are the truth.
public static class StoredReadings
{
    public static (long Rows, long Distinct) Count(string databasePath, string deviceId) => Count(GatewayStorage.Sqlite(databasePath), deviceId);

    public static (long Rows, long Distinct) Count(GatewayStorage storage, string deviceId) =>
        (storage.Scalar("""SELECT COUNT(*) FROM "Telemetry" WHERE "DeviceId" = $d""", deviceId),
         storage.Scalar("""SELECT COUNT(DISTINCT "MessageKey") FROM "Telemetry" WHERE "DeviceId" = $d""", deviceId));
}
