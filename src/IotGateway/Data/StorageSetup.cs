using System.Data.Common;
using System.Runtime.CompilerServices;
using IotGateway.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore.Diagnostics;
using IotGateway.Commands;
using IotGateway.Data.PostgreSql;
using IotGateway.Data.Sqlite;
using IotGateway.Ingest;
using Npgsql;

namespace IotGateway.Data;

// The configured provider's connection string for SQLite, checked and made absolute.
public sealed record SqliteConnectionString(string Value);

public sealed record PostgresConnectionString(string Value);

internal sealed class NothingToRun : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

public static class StorageSetup
{
    public const string ConnectionStringName = "Gateway";
    public const string DefaultConnectionString = "Data Source=data/gateway.db";

    public static IServiceCollection AddGatewayStorage(this IServiceCollection services)
    {
        services.AddOptions<DatabaseOptions>().BindSettings(DatabaseOptions.Section).ValidateOnStart();

        // Pooled: the options are built once, when first needed (so from the final configuration: tests and hosts may
        // add sources late), and contexts are reused. Building options and a context per request was a tenth of the
        // gateway's CPU under the round-trip benchmark. Both pools are registered; only the configured one is used.
        services.AddDbContextPool<SqliteGatewayDbContext>((sp, options) => options
            .UseSqlite(sp.GetRequiredService<SqliteConnectionString>().Value)
            .ConfigureWarnings(SkipModelCheck)
            .AddInterceptors(new SqlitePragmas()));
        services.AddDbContextPool<PostgresGatewayDbContext>((sp, options) => options
            .UseNpgsql(sp.GetRequiredService<NpgsqlDataSource>())
            .ConfigureWarnings(SkipModelCheck));
        services.AddScoped<GatewayDbContext>(sp => sp.DatabaseProvider() == Data.DatabaseProvider.Sqlite
            ? sp.GetRequiredService<SqliteGatewayDbContext>()
            : sp.GetRequiredService<PostgresGatewayDbContext>());

        services.AddSingleton(sp => new SqliteConnectionString(ResolveConnectionString(GatewayConnectionString(sp))));
        services.AddSingleton(sp => new DatabaseWriteGate(
            sp.DatabaseProvider() == Data.DatabaseProvider.Sqlite ? sp.GetRequiredService<SqliteConnectionString>().Value : null));
        // A SQLite file can be deleted or replaced under the gateway; PostgreSQL has no file of ours to watch.
        services.AddSingleton(sp => new DatabaseFile(
            sp.DatabaseProvider() == Data.DatabaseProvider.Sqlite ? sp.GetRequiredService<SqliteConnectionString>().Value : null));
        services.AddSingleton(sp => new PostgresConnectionString(GatewayConnectionString(sp)));
        services.AddSingleton(sp => PostgresDataSource(sp.GetRequiredService<PostgresConnectionString>().Value));

        // What each provider does its own way: the command and ingest stores, the signals between instances.
        services.AddSingleton<ICommandStore>(sp => sp.DatabaseProvider() == Data.DatabaseProvider.Sqlite
            ? ActivatorUtilities.CreateInstance<SqliteCommandStore>(sp)
            : ActivatorUtilities.CreateInstance<PostgresCommandStore>(sp));
        services.AddSingleton<IIngestStore>(sp => sp.DatabaseProvider() == Data.DatabaseProvider.Sqlite
            ? ActivatorUtilities.CreateInstance<SqliteIngestStore>(sp)
            : ActivatorUtilities.CreateInstance<PostgresIngestStore>(sp));
        services.AddSingleton<IClusterSignals>(sp => sp.DatabaseProvider() == Data.DatabaseProvider.Sqlite
            ? new InProcessSignals()
            : ActivatorUtilities.CreateInstance<PostgresSignals>(sp));
        // PostgreSQL's listener runs as a hosted service; in-process signals need nothing running.
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<IClusterSignals>() as IHostedService ?? new NothingToRun());

        // Before every service that uses the database or the broker; they wait for it (HostedServiceOrderTests).
        services.AddSingleton<DatabaseStartup>();
        services.AddHostedService(sp => sp.GetRequiredService<DatabaseStartup>());
        return services;
    }

    public static DatabaseProvider DatabaseProvider(this IServiceProvider services) =>
        services.GetRequiredService<IOptions<DatabaseOptions>>().Value.Provider;

    // Validates the configured provider's connection string (InvalidSettingException when it is unusable).
    public static void CheckConnectionString(IServiceProvider services)
    {
        if (services.DatabaseProvider() == Data.DatabaseProvider.Sqlite)
        {
            _ = services.GetRequiredService<SqliteConnectionString>();
        }
        else
        {
            _ = services.GetRequiredService<NpgsqlDataSource>();
        }
    }

    private static string GatewayConnectionString(IServiceProvider services) =>
        services.GetRequiredService<IConfiguration>().GetConnectionString(ConnectionStringName) ?? DefaultConnectionString;

    // Pooled connections whose statements Npgsql prepares once they repeat (the writers' few statements run thousands
    // of times), unless the connection string says otherwise.
    public static NpgsqlDataSource PostgresDataSource(string connectionString)
    {
        NpgsqlDataSourceBuilder builder;
        try
        {
            builder = new NpgsqlDataSourceBuilder(connectionString);
        }
        catch (ArgumentException e) when (connectionString.Contains("Data Source", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidSettingException(
                "Database:Provider is PostgreSQL but ConnectionStrings:Gateway is a SQLite connection string: give Npgsql's form (Host=…;Port=…;Database=…;Username=…;Password=…).", e);
        }
        catch (ArgumentException e)
        {
            throw new InvalidSettingException($"ConnectionStrings:Gateway is not a PostgreSQL connection string (Host=…;Port=…;Database=…;Username=…;Password=…): {e.Message}", e);
        }

        var settings = builder.ConnectionStringBuilder;
        if (string.IsNullOrEmpty(settings.Host) || string.IsNullOrEmpty(settings.Database) || settings.Host.Contains(".db", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidSettingException(
                "ConnectionStrings:Gateway must be a PostgreSQL connection string naming Host and Database (Host=…;Port=…;Database=…;Username=…;Password=…) when Database:Provider is PostgreSQL.");
        }

        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!given.ContainsKey("Max Auto Prepare") && !given.ContainsKey("MaxAutoPrepare"))
        {
            settings.MaxAutoPrepare = 64;
        }

        return builder.Build();
    }

    // A relative file is relative to the working directory; its folder is created so a fresh clone just runs.
    public static string ResolveConnectionString(string connectionString)
    {
        SqliteConnectionStringBuilder builder;
        try
        {
            builder = new SqliteConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new InvalidSettingException($"ConnectionStrings:Gateway is not a SQLite connection string: {e.Message}", e);
        }

        if (string.IsNullOrEmpty(builder.DataSource) || builder.DataSource == ":memory:" || builder.Mode == SqliteOpenMode.Memory)
        {
            throw new InvalidSettingException("ConnectionStrings:Gateway must name a SQLite file: the gateway's data has to survive a restart.");
        }

        builder.DataSource = Path.GetFullPath(builder.DataSource);
        builder.Pooling = true;
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!given.ContainsKey("Default Timeout") && !given.ContainsKey("Command Timeout"))
        {
            // How long a command waits for a lock another process holds before it fails (default 30 s): the
            // writer then reports the trouble through readiness and retries, instead of hanging silently.
            builder.DefaultTimeout = 5;
        }

        // Owner-only, like every file of the gateway; SQLite gives its -wal and -shm files the database file's mode.
        Security.PrivateFiles.CreateFolder(Path.GetDirectoryName(builder.DataSource)!);
        Security.PrivateFiles.Ensure(builder.DataSource);
        return builder.ToString();
    }

    // Any fixed number: every instance of the gateway takes the same advisory lock to migrate.
    private const long MigrationLockKey = 0x10_7_6A7E_3A47;

    // Migrate compares the model with the migrations before it runs them, which builds the model from OnModelCreating
    // again, besides the compiled one (Data/CompiledModels), and slows every start. CompiledModelTests makes that check
    // (and that the compiled model is current) at test time instead.
    private static void SkipModelCheck(WarningsConfigurationBuilder warnings) => warnings.Ignore(RelationalEventId.PendingModelChangesWarning);

    public static async Task MigrateGatewayDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken = default)
    {
        var provider = services.DatabaseProvider();
        await using var connection = provider == Data.DatabaseProvider.Sqlite
            ? (DbConnection)new SqliteConnection(services.GetRequiredService<SqliteConnectionString>().Value)
            : services.GetRequiredService<NpgsqlDataSource>().CreateConnection();
        await connection.OpenAsync(cancellationToken);
        if (provider == Data.DatabaseProvider.Sqlite)
        {
            if (!await AppliedMigrations.AllAppliedAsync(connection, provider, cancellationToken))
            {
                await MigrateAsync(services, cancellationToken);
            }

            // WAL is a property of the file: readers never block the writer, and commits cost one fsync of the log.
            // Then one committed write (the header's user_version, which nothing uses, set to what it is): a database
            // that cannot be written, a full disk say, does not count as open, and the gateway stays off the broker.
            await using var wal = connection.CreateCommand();
            wal.CommandText = "PRAGMA journal_mode=WAL;";
            await wal.ExecuteNonQueryAsync(cancellationToken);
            await using var version = connection.CreateCommand();
            version.CommandText = "PRAGMA user_version;";
            var userVersion = Convert.ToInt64(await version.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
            version.CommandText = $"PRAGMA user_version = {userVersion};";
            await version.ExecuteNonQueryAsync(cancellationToken);
        }
        else
        {
            // Several instances starting at once: one migrates while the others wait on a session advisory lock, then
            // find nothing to do. EF Core's own migration lock was not enough once there were two migrations (three
            // instances at once on an empty database: "relation already exists"; SeveralGatewaysTests).
            await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({MigrationLockKey})", (NpgsqlConnection)connection))
            {
                await take.ExecuteNonQueryAsync(cancellationToken);
            }

            if (!await AppliedMigrations.AllAppliedAsync(connection, provider, cancellationToken))
            {
                await MigrateAsync(services, cancellationToken);
            }

            await using var release = new NpgsqlCommand($"SELECT pg_advisory_unlock({MigrationLockKey})", (NpgsqlConnection)connection);
            await release.ExecuteNonQueryAsync(cancellationToken);
        }

        await services.GetRequiredService<Devices.DeviceRegistry>().LoadAsync(connection, cancellationToken);
        services.GetRequiredService<DatabaseFile>().Watch();
    }

    private static async Task MigrateAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().Database.MigrateAsync(cancellationToken);
    }

    // Per-connection settings. synchronous=NORMAL under WAL is durable against process crashes (what the
    // lossless ingest relies on) and loses at most the last commits on power loss, never corrupts.
    // A 16 MB page cache keeps the telemetry indexes' hot pages in memory during bursts.
    // Checkpoints every 10,000 WAL pages (40 MB) instead of SQLite's 1,000: readings from many devices dirty a leaf
    // of each telemetry index per device in every batch, so the WAL holds many versions of the same pages, and a
    // checkpoint copies only the last one. 100,000 readings from 100 interleaved devices: 1.34-1.54 s → 1.07-1.27 s.
    internal static void ApplyConnectionPragmas(SqliteConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=1000; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=10000;";
        command.ExecuteNonQuery();
    }

    // The settings stay with the native connection, which the pool keeps open: applied once per native
    // connection, not at every open (parsing five PRAGMAs per query showed up in the profile).
    private sealed class SqlitePragmas : DbConnectionInterceptor
    {
        private readonly ConditionalWeakTable<SQLitePCL.sqlite3, object> _configured = [];

        public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData) => Apply(connection);

        public override Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            // SQLite work is synchronous in-process calls; there is nothing to await.
            Apply(connection);
            return Task.CompletedTask;
        }

        private void Apply(DbConnection connection)
        {
            var sqlite = (SqliteConnection)connection;
            var handle = sqlite.Handle!;
            if (_configured.TryGetValue(handle, out _))
            {
                return;
            }

            ApplyConnectionPragmas(sqlite);
            _configured.AddOrUpdate(handle, handle);
        }
    }
}
