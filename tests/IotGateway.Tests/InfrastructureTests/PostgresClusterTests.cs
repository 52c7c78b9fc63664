using IotGateway.Tests.Infrastructure;
using Npgsql;

namespace IotGateway.Tests.InfrastructureTests;

public sealed class PostgresClusterTests
{
    // Each test's database is its own: a table made in one is not in the other, and both live on the run's one cluster.
    [SkippableFact]
    public async Task EachTestGetsAnEmptyDatabaseOfItsOwnOnTheSharedCluster()
    {
        var first = await PostgresCluster.CreateDatabaseAsync();
        var second = await PostgresCluster.CreateDatabaseAsync();
        Assert.NotEqual(first, second);

        await Execute(first, "CREATE TABLE only_here (x int)");
        Assert.Equal(1L, await Scalar(first, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"));
        Assert.Equal(0L, await Scalar(second, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"));
        Assert.Equal(new NpgsqlConnectionStringBuilder(first).Port, new NpgsqlConnectionStringBuilder(second).Port);
        // Binary order, as SQLite compares text: device ids page the same way on both.
        Assert.Equal("C", await Scalar(first, "SELECT datcollate FROM pg_database WHERE datname = current_database()"));
    }

    private static async Task Execute(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<object?> Scalar(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }
}
