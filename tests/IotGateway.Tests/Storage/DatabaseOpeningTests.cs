using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Storage;

// At start the gateway reads the migration history with plain SQL and runs EF Core's migrator only when this build
// has a migration the database lacks (Data/AppliedMigrations): a restart, the usual start, skips the migrator's
// set-up. On both providers, against a real database.
public sealed class SqliteDatabaseOpeningTests : DatabaseOpeningTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresDatabaseOpeningTests : DatabaseOpeningTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class DatabaseOpeningTests
{
    private const string MigratorCategory = "Microsoft.EntityFrameworkCore.Migrations";

    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task ARestartOnADatabaseWithEveryMigrationDoesNotRunTheMigrator()
    {
        await using var gateway = await StartAsync();
        Assert.Contains(gateway.Logs.Lines, l => l.Contains(MigratorCategory, StringComparison.Ordinal));

        var before = gateway.Logs.Lines.Count;
        await gateway.RestartAsync(waitUntilReady: false);
        Assert.DoesNotContain(gateway.Logs.Lines.Skip(before), l => l.Contains(MigratorCategory, StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task ARestartOnADatabaseThatLacksAMigrationAppliesIt()
    {
        await using var gateway = await StartAsync();
        const string Index = "IX_Commands_Pending";
        Assert.Equal(1, IndexCount(gateway, Index));

        // As a database of the build before that migration would be.
        gateway.Storage.Execute($"""DROP INDEX "{Index}" """);
        Assert.Equal(1, gateway.Storage.Execute("""DELETE FROM "__EFMigrationsHistory" WHERE "MigrationId" LIKE '%\_PendingCommandIndex' ESCAPE '\'"""));

        await gateway.RestartAsync(waitUntilReady: false);
        Assert.Equal(1, IndexCount(gateway, Index));
        Assert.Equal(1, gateway.Storage.Scalar("""SELECT COUNT(*) FROM "__EFMigrationsHistory" WHERE "MigrationId" LIKE '%\_PendingCommandIndex' ESCAPE '\'"""));
    }

    // The registry is loaded with plain SQL at start: who is signed in, and who talks TCP, as the database says.
    [SkippableFact]
    public async Task ARestartLoadsWhoIsSignedInAndWhoTalksTcpFromTheDatabase()
    {
        await using var gateway = await StartAsync();
        gateway.Storage.Execute("""
            INSERT INTO "Devices" ("Id", "SignedIn", "FirstSeen", "TelemetryCount", "PendingCommands", "Transport", "TcpInstance")
            VALUES ('mqtt-in', TRUE, 0, 0, 0, 'mqtt', NULL), ('mqtt-out', FALSE, 0, 0, 0, 'mqtt', NULL),
                   ('tcp-out', FALSE, 0, 0, 0, 'tcp', NULL)
            """);

        await gateway.RestartAsync(waitUntilReady: false);
        var registry = gateway.Services.GetRequiredService<DeviceRegistry>();
        Assert.True(registry.IsSignedIn("mqtt-in"));
        Assert.False(registry.IsSignedIn("mqtt-out"));
        Assert.False(registry.IsSignedIn("tcp-out"));
        Assert.True(registry.IsTcp("tcp-out"));
        Assert.False(registry.IsTcp("mqtt-in"));
        Assert.False(registry.IsTcp("mqtt-out"));
    }

    private static long IndexCount(GatewayApp gateway, string index) => gateway.Storage.Scalar(gateway.Storage.IsPostgres
        ? $"SELECT COUNT(*) FROM pg_indexes WHERE indexname = '{index}'"
        : $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '{index}'");

    // No broker listens there: only the database is opened. EF Core's migrator logs what it does at Information.
    private async Task<GatewayApp> StartAsync()
    {
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return await GatewayApp.StartAsync("mqtt://127.0.0.1:1", s => s[$"Logging:LogLevel:{MigratorCategory}"] = "Information",
            waitUntilReady: false, provider: Provider);
    }
}
