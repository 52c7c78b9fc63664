using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace IotGateway.Mqtt.Embedded;

// The embedded broker's sessions as the database keeps them, so that a restart of the gateway finds them again.
// Plain columns and text only (no provider-specific types): the same tables serve SQLite and PostgreSQL.
public sealed class StoredBrokerSession
{
    public required string ClientId { get; set; }

    // Seconds the session outlives its connection; uint.MaxValue: never expires.
    public long ExpirySeconds { get; set; }

    // Null while a client is connected (a crash then counts the expiry from the restart).
    public DateTimeOffset? DisconnectedAt { get; set; }
    public string? Username { get; set; }
    public int KeepAliveSeconds { get; set; }

    // The Last Will that is still armed or pending, as JSON (StoredWill); null when there is none.
    public string? Will { get; set; }
}

public sealed class StoredBrokerSubscription
{
    public required string ClientId { get; set; }
    public required string TopicFilter { get; set; }
    public int Qos { get; set; }
    public bool NoLocal { get; set; }
    public bool RetainAsPublished { get; set; }
    public int RetainHandling { get; set; }
    public long Identifier { get; set; }
}

// A QoS 1 or 2 message the broker holds for a session (waiting, or sent and not yet acknowledged).
public sealed class StoredBrokerMessage
{
    // Assigned by the broker, in queue order.
    public long Id { get; set; }
    public required string ClientId { get; set; }
    public required string Topic { get; set; }
    public required byte[] Payload { get; set; }
    public int Qos { get; set; }
    public bool Retain { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }

    // The MQTT 5 properties forwarded with it, as JSON (ForwardedProperties); null when there are none.
    public string? Properties { get; set; }
}

internal sealed class StoredBrokerSessionMapping : IEntityTypeConfiguration<StoredBrokerSession>
{
    public void Configure(EntityTypeBuilder<StoredBrokerSession> session)
    {
        session.ToTable("BrokerSessions");
        session.HasKey(s => s.ClientId);
    }
}

internal sealed class StoredBrokerSubscriptionMapping : IEntityTypeConfiguration<StoredBrokerSubscription>
{
    public void Configure(EntityTypeBuilder<StoredBrokerSubscription> subscription)
    {
        subscription.ToTable("BrokerSubscriptions");
        subscription.HasKey(s => new { s.ClientId, s.TopicFilter });
        subscription.HasOne<StoredBrokerSession>().WithMany().HasForeignKey(s => s.ClientId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class StoredBrokerMessageMapping : IEntityTypeConfiguration<StoredBrokerMessage>
{
    public void Configure(EntityTypeBuilder<StoredBrokerMessage> message)
    {
        message.ToTable("BrokerMessages");
        message.HasKey(m => m.Id);
        message.Property(m => m.Id).ValueGeneratedNever();
        message.HasIndex(m => new { m.ClientId, m.Id });
        message.HasOne<StoredBrokerSession>().WithMany().HasForeignKey(m => m.ClientId).OnDelete(DeleteBehavior.Cascade);
    }
}
