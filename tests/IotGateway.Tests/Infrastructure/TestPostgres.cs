using IotGateway.Testing;

namespace IotGateway.Tests.Infrastructure;

/// <summary>
/// The test run's one PostgreSQL cluster, started on first use; each test takes a database of its own from it. It
/// is stopped, and its folder removed, once the test process has ended (see <see cref="PostgresCluster"/>).
/// </summary>
public static class TestPostgres
{
    private static readonly Lazy<Task<PostgresCluster>> Cluster = new(() => PostgresCluster.StartAsync(durable: false));

    /// <summary>A fresh, empty database on the run's cluster; returns its Npgsql connection string.</summary>
    public static async Task<string> CreateDatabaseAsync()
    {
        Requires.PostgreSql();
        var cluster = await Cluster.Value;
        return await cluster.CreateDatabaseAsync($"test_{Guid.NewGuid():N}");
    }

    /// <summary>The run's cluster (started now if no test has needed it yet).</summary>
    public static Task<PostgresCluster> ClusterAsync()
    {
        Requires.PostgreSql();
        return Cluster.Value;
    }
}
