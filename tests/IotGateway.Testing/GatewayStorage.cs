using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace IotGateway.Testing;

// A gateway's database as a second process sees it: a SQLite file or a PostgreSQL database.
public sealed record GatewayStorage(string? SqlitePath, string? PostgresConnectionString)
{
    public static GatewayStorage Sqlite(string path) => new(path, null);

    public static GatewayStorage Postgres(string connectionString) => new(null, connectionString);

    public bool IsPostgres => PostgresConnectionString is not null;

    // A connection of its own, unpooled on SQLite so nothing of ours keeps the file open; it waits for the gateway's
    // writer instead of failing at once.
    public DbConnection Open(bool readOnly = false)
    {
        DbConnection connection = PostgresConnectionString is { } pg
            ? new NpgsqlConnection(pg)
            : new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = SqlitePath,
                Mode = readOnly ? SqliteOpenMode.ReadOnly : SqliteOpenMode.ReadWriteCreate,
                Pooling = false,
                DefaultTimeout = 30,
            }.ToString());
        connection.Open();
        return connection;
    }

    // Runs a statement as another process would (a crash's leftovers, say); returns the rows it changed.
    public int Execute(string sql)
    {
        using var connection = Open();
        using var command = Command(connection, sql, deviceId: null);
        return command.ExecuteNonQuery();
    }

    // One number from a query (parameter $d: the device id, when given).
    public long Scalar(string sql, string? deviceId = null)
    {
        using var connection = Open(readOnly: true);
        using var command = Command(connection, sql, deviceId);
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    // Two numbers from one query, read in one snapshot (parameter $d: the device id, when given).
    public (long First, long Second) Pair(string sql, string? deviceId = null)
    {
        using var connection = Open(readOnly: true);
        using var command = Command(connection, sql, deviceId);
        using var reader = command.ExecuteReader();
        reader.Read();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    // Npgsql names parameters @d; SQLite takes $d as the queries are written.
    private DbCommand Command(DbConnection connection, string sql, string? deviceId)
    {
        var command = connection.CreateCommand();
        command.CommandText = IsPostgres ? sql.Replace("$d", "@d", StringComparison.Ordinal) : sql;
        if (deviceId is not null)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = IsPostgres ? "d" : "$d";
            parameter.Value = deviceId;
            command.Parameters.Add(parameter);
        }

        return command;
    }
}
