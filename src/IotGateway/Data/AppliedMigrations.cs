using System.Data.Common;
using System.Reflection;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace IotGateway.Data;

// Whether a database already has every migration of this build, read with plain SQL. On a restart (the usual start)
// the gateway then opens its database without EF Core's migrator and its set-up (a DbContext, the migrations, a lock),
// which delayed the broker connection; EF Core migrates only when something is missing.
internal static class AppliedMigrations
{
    private const string HistoryTable = "__EFMigrationsHistory";

    // This build's migrations for the provider's context, found by the attributes EF Core's migrator looks for.
    public static IReadOnlySet<string> Known(Type contextType) =>
        typeof(AppliedMigrations).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(Migration)) && t.GetCustomAttribute<DbContextAttribute>()?.ContextType == contextType)
            .Select(t => t.GetCustomAttribute<MigrationAttribute>()!.Id)
            .ToHashSet(StringComparer.Ordinal);

    public static async Task<bool> AllAppliedAsync(DbConnection connection, DatabaseProvider provider, CancellationToken cancellationToken)
    {
        var known = Known(provider == DatabaseProvider.Sqlite ? typeof(SqliteGatewayDbContext) : typeof(PostgresGatewayDbContext));
        await using var exists = connection.CreateCommand();
        exists.CommandText = provider == DatabaseProvider.Sqlite
            ? $"SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{HistoryTable}')"
            : $"SELECT to_regclass('\"{HistoryTable}\"') IS NOT NULL";
        if (!Convert.ToBoolean(await exists.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture))
        {
            return false;
        }

        var applied = new HashSet<string>(StringComparer.Ordinal);
        await using var read = connection.CreateCommand();
        read.CommandText = $"""SELECT "MigrationId" FROM "{HistoryTable}" """;
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            applied.Add(reader.GetString(0));
        }

        return known.IsSubsetOf(applied);
    }
}
