using IotGateway.Commands;
using IotGateway.Devices;
using IotGateway.Mqtt.Embedded;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace IotGateway.Data;

public sealed class GatewayDbContext(DbContextOptions<GatewayDbContext> options) : DbContext(options)
{
    public DbSet<Device> Devices => Set<Device>();
    public DbSet<TelemetryReading> Telemetry => Set<TelemetryReading>();
    public DbSet<Command> Commands => Set<Command>();

    // The embedded broker's sessions (Mqtt/Embedded).
    public DbSet<StoredBrokerSession> BrokerSessions => Set<StoredBrokerSession>();
    public DbSet<StoredBrokerSubscription> BrokerSubscriptions => Set<StoredBrokerSubscription>();
    public DbSet<StoredBrokerMessage> BrokerMessages => Set<StoredBrokerMessage>();

    // The hottest reads, compiled once: EF Core's per-call query preparation (parameter extraction, cache lookup)
    // cost more than the SQLite work for these single-row lookups under the round-trip benchmark.
    private static readonly Func<GatewayDbContext, Guid, CancellationToken, Task<Command?>> CommandById =
        EF.CompileAsyncQuery((GatewayDbContext db, Guid id, CancellationToken _) => db.Commands.AsNoTracking().FirstOrDefault(c => c.Id == id));

    private static readonly Func<GatewayDbContext, string, CancellationToken, Task<bool>> DeviceExists =
        EF.CompileAsyncQuery((GatewayDbContext db, string deviceId, CancellationToken _) => db.Devices.Any(d => d.Id == deviceId));

    public Task<Command?> FindCommandAsync(Guid id, CancellationToken cancellationToken) => CommandById(this, id, cancellationToken);

    public Task<bool> DeviceExistsAsync(string deviceId, CancellationToken cancellationToken) => DeviceExists(this, deviceId, cancellationToken);

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
            command.HasIndex(c => c.BatchId).HasFilter("\"BatchId\" IS NOT NULL");
            command.Property(c => c.DeviceId).HasMaxLength(DeviceIds.MaxLength);
            command.Property(c => c.Name).HasMaxLength(CommandLimits.MaxNameLength);
        });

        modelBuilder.ApplyConfiguration(new StoredBrokerSessionMapping());
        modelBuilder.ApplyConfiguration(new StoredBrokerSubscriptionMapping());
        modelBuilder.ApplyConfiguration(new StoredBrokerMessageMapping());
    }

    private sealed class UtcTicksConverter() : ValueConverter<DateTimeOffset, long>(
        value => value.UtcTicks,
        ticks => new DateTimeOffset(ticks, TimeSpan.Zero));
}
