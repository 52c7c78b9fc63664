using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace IotGateway.Tests.InfrastructureTests;

public sealed class PostgresClusterTests
{
    // Each test's database is its own: a table made in one is not in the other, and both live on the run's one cluster.
    [SkippableFact]
    public async Task EachTestGetsAnEmptyDatabaseOfItsOwnOnTheSharedCluster()
    {
        var first = await TestPostgres.CreateDatabaseAsync();
        var second = await TestPostgres.CreateDatabaseAsync();
        Assert.NotEqual(first, second);

        await Execute(first, "CREATE TABLE only_here (x int)");
        Assert.Equal(1L, await Scalar(first, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"));
        Assert.Equal(0L, await Scalar(second, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"));
        Assert.Equal(new NpgsqlConnectionStringBuilder(first).Port, new NpgsqlConnectionStringBuilder(second).Port);
        // Binary order, as SQLite compares text: device ids page the same way on both.
        Assert.Equal("C", await Scalar(first, "SELECT datcollate FROM pg_database WHERE datname = current_database()"));
    }

    // A run that was killed leaves its cluster running: the next start stops it and removes its folder, and leaves
    // the clusters of live processes (this run's own) alone.
    [SkippableFact]
    public async Task AClusterWhoseOwnerIsGoneIsStoppedAndRemoved()
    {
        Requires.PostgreSql();
        var shared = await TestPostgres.ClusterAsync();
        var orphan = await PostgresCluster.StartAsync(durable: false);
        try
        {
            var server = ServerProcessId(orphan);
            await File.WriteAllTextAsync(Path.Combine(orphan.Directory, "owner"), await DeadProcessAsync());

            await PostgresCluster.RemoveLeftoversAsync();

            Assert.False(Directory.Exists(orphan.Directory));
            await Eventually.UntilAsync(() => !Directory.Exists($"/proc/{server}"), TimeSpan.FromSeconds(30), "the orphan's server has stopped");
            Assert.Equal(1L, await Scalar(await shared.CreateDatabaseAsync($"test_{Guid.NewGuid():N}"), "SELECT 1::bigint"));
        }
        finally
        {
            await orphan.DisposeAsync();
        }
    }

    [SkippableFact]
    public async Task DisposeStopsTheServerAndRemovesTheFolder()
    {
        Requires.PostgreSql();
        var cluster = await PostgresCluster.StartAsync(durable: false);
        var server = ServerProcessId(cluster);

        await cluster.DisposeAsync();

        Assert.False(Directory.Exists(cluster.Directory));
        await Eventually.UntilAsync(() => !Directory.Exists($"/proc/{server}"), TimeSpan.FromSeconds(30), "the server has stopped");
    }

    private static int ServerProcessId(PostgresCluster cluster) =>
        int.Parse(File.ReadLines(Path.Combine(cluster.DataDirectory, "postmaster.pid")).First(), CultureInfo.InvariantCulture);

    // The owner line of a process that has ended: its id, and a start time no live process with that id has.
    private static async Task<string> DeadProcessAsync()
    {
        using var process = Process.Start("true")!;
        await process.WaitForExitAsync();
        return string.Create(CultureInfo.InvariantCulture, $"{process.Id} 1");
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
