using IotGateway.Commands;
using IotGateway.Devices;
using IotGateway.Mqtt.Embedded;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace IotGateway.Data;

// One model for both providers, with the same value conversions (times as UTC ticks, ids and enums as text), so raw
// SQL and aggregates do the same arithmetic on both. Each provider derives its own context (below) because EF Core
// keeps migrations per context type: Migrations/Sqlite and Migrations/PostgreSql.
public abstract class GatewayDbContext(DbContextOptions options) : DbContext(options)
{
    public DbSet<Device> Devices => Set<Device>();
    public DbSet<TelemetryReading> Telemetry => Set<TelemetryReading>();
    public DbSet<Command> Commands => Set<Command>();
    public DbSet<CommandLane> CommandLanes => Set<CommandLane>();

    // The embedded broker's sessions (Mqtt/Embedded).
    public DbSet<StoredBrokerSession> BrokerSessions => Set<StoredBrokerSession>();
    public DbSet<StoredBrokerSubscription> BrokerSubscriptions => Set<StoredBrokerSubscription>();
    public DbSet<StoredBrokerMessage> BrokerMessages => Set<StoredBrokerMessage>();

    // The hottest reads, compiled once per provider (ProviderDbContext below).
    public abstract Task<Command?> FindCommandAsync(Guid id, CancellationToken cancellationToken);

    public abstract Task<bool> DeviceExistsAsync(string deviceId, CancellationToken cancellationToken);

    // The device's oldest Pending command that has not expired: what its lane publishes next.
    public abstract Task<Command?> NextPendingCommandAsync(string deviceId, DateTimeOffset now, CancellationToken cancellationToken);

    public abstract Task<bool> AnyCommandDueAsync(DateTimeOffset now, CancellationToken cancellationToken);

    // Whether an unexpired command waits to be published: the lane scan asks this (a read) before it claims lanes.
    public Task<bool> AnyCommandPendingAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        Commands.AnyAsync(c => c.Status == CommandStatus.Pending && c.ExpiresAt > now, cancellationToken);

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // SQLite cannot compare DateTimeOffset text; UTC ticks keep range queries and ordering in SQL.
        configurationBuilder.Properties<DateTimeOffset>().HaveConversion<UtcTicksConverter>();
        configurationBuilder.Properties<CommandStatus>().HaveConversion<string>().HaveMaxLength(16);
        configurationBuilder.Properties<PayloadFormat>().HaveConversion<string>().HaveMaxLength(8);
        // Lower-case text, the form devices echo back as "uuid" and the raw SQL of the writer uses.
        configurationBuilder.Properties<Guid>().HaveConversion<string>().HaveMaxLength(36);
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Device>(device =>
        {
            device.ToTable("Devices");
            device.HasKey(d => d.Id);
            device.Property(d => d.Id).HasMaxLength(DeviceIds.MaxLength);
            device.Property(d => d.Transport).HasMaxLength(8).HasDefaultValue(DeviceTransports.Mqtt);
            device.Property(d => d.TcpInstance).HasMaxLength(128);
            device.HasIndex(d => d.SignedIn);
        });

        modelBuilder.Entity<TelemetryReading>(reading =>
        {
            reading.ToTable("Telemetry");
            reading.HasKey(r => r.Id);
            reading.Property(r => r.DeviceId).HasMaxLength(DeviceIds.MaxLength);
            reading.HasIndex(r => new { r.DeviceId, r.Id });
            reading.HasIndex(r => new { r.DeviceId, r.MessageKey }).IsUnique().HasFilter("\"MessageKey\" IS NOT NULL");
        });

        modelBuilder.Entity<Command>(command =>
        {
            command.ToTable("Commands");
            command.HasKey(c => c.Sequence);
            command.HasIndex(c => c.Id).IsUnique();
            command.HasIndex(c => new { c.DeviceId, c.Sequence });
            command.HasIndex(c => new { c.Status, c.Sequence });
            // A device's next Pending command, and whether it has older ones than a new batch. Partial, so that it stays
            // small, and so that SQLite picks it without statistics: otherwise it walks (Status, Sequence) through every
            // Pending command of the fleet for each device, which made a 10,000-device bulk command quadratic.
            command.HasIndex(c => new { c.DeviceId, c.Sequence }, "IX_Commands_Pending").HasFilter("\"Status\" = 'Pending'");
            command.HasIndex(c => c.BatchId).HasFilter("\"BatchId\" IS NOT NULL");
            command.Property(c => c.DeviceId).HasMaxLength(DeviceIds.MaxLength);
            command.Property(c => c.Name).HasMaxLength(CommandLimits.MaxNameLength);
        });

        modelBuilder.Entity<CommandLane>(lane =>
        {
            lane.ToTable("CommandLanes");
            lane.HasKey(l => l.DeviceId);
            lane.Property(l => l.DeviceId).HasMaxLength(DeviceIds.MaxLength);
            lane.Property(l => l.Owner).HasMaxLength(128);
        });

        modelBuilder.ApplyConfiguration(new StoredBrokerSessionMapping());
        modelBuilder.ApplyConfiguration(new StoredBrokerSubscriptionMapping());
        modelBuilder.ApplyConfiguration(new StoredBrokerMessageMapping());
    }

    internal sealed class UtcTicksConverter() : ValueConverter<DateTimeOffset, long>(
        value => value.UtcTicks,
        ticks => new DateTimeOffset(ticks, TimeSpan.Zero));
}

// EF Core's per-call query preparation (parameter extraction, cache lookup) cost more than the SQLite work for these
// single-row lookups under the round-trip benchmark, so they are compiled once. A compiled query serves one model:
// one set per provider (static fields of a generic class are per closed type), since tests run both in one process.
public abstract class ProviderDbContext<TSelf>(DbContextOptions options) : GatewayDbContext(options)
    where TSelf : ProviderDbContext<TSelf>
{
    private static readonly Func<TSelf, Guid, CancellationToken, Task<Command?>> CommandById =
        EF.CompileAsyncQuery((TSelf db, Guid id, CancellationToken _) => db.Commands.AsNoTracking().FirstOrDefault(c => c.Id == id));

    private static readonly Func<TSelf, string, CancellationToken, Task<bool>> DeviceExists =
        EF.CompileAsyncQuery((TSelf db, string deviceId, CancellationToken _) => db.Devices.Any(d => d.Id == deviceId));

    private static readonly Func<TSelf, string, DateTimeOffset, CancellationToken, Task<Command?>> NextPending =
        EF.CompileAsyncQuery((TSelf db, string deviceId, DateTimeOffset now, CancellationToken _) => db.Commands.AsNoTracking()
            .Where(c => c.DeviceId == deviceId && c.Status == CommandStatus.Pending && c.ExpiresAt > now)
            .OrderBy(c => c.Sequence)
            .FirstOrDefault());

    private static readonly Func<TSelf, DateTimeOffset, CancellationToken, Task<bool>> AnyDue =
        EF.CompileAsyncQuery((TSelf db, DateTimeOffset now, CancellationToken _) =>
            db.Commands.Any(c => (c.Status == CommandStatus.Pending || c.Status == CommandStatus.Published) && c.ExpiresAt <= now));

    public override Task<Command?> FindCommandAsync(Guid id, CancellationToken cancellationToken) => CommandById((TSelf)this, id, cancellationToken);

    public override Task<bool> DeviceExistsAsync(string deviceId, CancellationToken cancellationToken) =>
        DeviceExists((TSelf)this, deviceId, cancellationToken);

    public override Task<Command?> NextPendingCommandAsync(string deviceId, DateTimeOffset now, CancellationToken cancellationToken) =>
        NextPending((TSelf)this, deviceId, now, cancellationToken);

    public override Task<bool> AnyCommandDueAsync(DateTimeOffset now, CancellationToken cancellationToken) => AnyDue((TSelf)this, now, cancellationToken);
}

public sealed class SqliteGatewayDbContext(DbContextOptions<SqliteGatewayDbContext> options) : ProviderDbContext<SqliteGatewayDbContext>(options);

public sealed class PostgresGatewayDbContext(DbContextOptions<PostgresGatewayDbContext> options) : ProviderDbContext<PostgresGatewayDbContext>(options)
{
    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        base.OnModelCreating(modelBuilder);
        // Binary order, as SQLite compares text: device lists page the same way on both, whatever the database's locale.
        modelBuilder.Entity<Device>().Property(d => d.Id).UseCollation("C");
        modelBuilder.Entity<TelemetryReading>().Property(r => r.DeviceId).UseCollation("C");
        modelBuilder.Entity<Command>().Property(c => c.DeviceId).UseCollation("C");
        modelBuilder.Entity<CommandLane>().Property(l => l.DeviceId).UseCollation("C");
    }
}
