using System.Buffers;
using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using MQTTnet;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace IotGateway.Mqtt.Embedded;

// The MQTT 5 properties a broker forwards unchanged with an application message. The message expiry is not among
// them: it counts down while the broker holds the message (see Delivery.ExpiresAt).
internal sealed record ForwardedProperties(
    string? ContentType,
    string? ResponseTopic,
    byte[]? CorrelationData,
    MqttPayloadFormatIndicator PayloadFormat,
    IReadOnlyList<MqttUserProperty>? UserProperties)
{
    public static ForwardedProperties? From(MqttApplicationMessage message)
    {
        var userProperties = message.UserProperties?.Where(p => p.Name != Delivery.Tag).ToList();
        if (message.ContentType is null && message.ResponseTopic is null && message.CorrelationData is null
            && message.PayloadFormatIndicator == MqttPayloadFormatIndicator.Unspecified && userProperties is not { Count: > 0 })
        {
            return null;
        }

        return new ForwardedProperties(message.ContentType, message.ResponseTopic, message.CorrelationData, message.PayloadFormatIndicator,
            userProperties is { Count: > 0 } ? userProperties : null);
    }

    public void ApplyTo(MqttApplicationMessage message)
    {
        message.ContentType = ContentType;
        message.ResponseTopic = ResponseTopic;
        message.CorrelationData = CorrelationData;
        message.PayloadFormatIndicator = PayloadFormat;
        if (UserProperties is not null)
        {
            message.UserProperties = [.. UserProperties];
        }
    }

    public StoredProperties ToStored(IReadOnlyList<uint>? subscriptionIdentifiers = null, uint expiryInterval = 0) => new()
    {
        ContentType = ContentType,
        ResponseTopic = ResponseTopic,
        CorrelationData = CorrelationData,
        PayloadFormat = (int)PayloadFormat,
        UserProperties = UserProperties?.Select(p => new[] { p.Name, Encoding.UTF8.GetString(p.ValueBuffer.Span) }).ToList(),
        SubscriptionIdentifiers = subscriptionIdentifiers?.ToList(),
        ExpiryInterval = expiryInterval,
    };

    public static ForwardedProperties? FromStored(StoredProperties? stored)
    {
        if (stored is null || (stored.ContentType is null && stored.ResponseTopic is null && stored.CorrelationData is null
            && stored.PayloadFormat == 0 && stored.UserProperties is not { Count: > 0 }))
        {
            return null;
        }

        return new ForwardedProperties(stored.ContentType, stored.ResponseTopic, stored.CorrelationData, (MqttPayloadFormatIndicator)stored.PayloadFormat,
            stored.UserProperties?.Where(p => p.Length == 2).Select(p => new MqttUserProperty(p[0], Encoding.UTF8.GetBytes(p[1]).AsMemory())).ToList());
    }
}

// The JSON form of the properties in the database and the retained-messages file.
internal sealed class StoredProperties
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault,
    };

    public string? ContentType { get; set; }
    public string? ResponseTopic { get; set; }
    public byte[]? CorrelationData { get; set; }
    public int PayloadFormat { get; set; }
    public List<string[]>? UserProperties { get; set; }
    public List<uint>? SubscriptionIdentifiers { get; set; }
    public uint ExpiryInterval { get; set; }

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    public static StoredProperties? FromJson(string? json) => json is null ? null : JsonSerializer.Deserialize<StoredProperties>(json, Options);
}

// One message the broker holds for one session: waiting to be sent, or sent and not yet acknowledged.
internal sealed class Delivery
{
    // A user property that carries the delivery's id from our enqueue to the moment MQTTnet sends the packet, where
    // it is removed (EmbeddedBroker's outbound interceptor): it ties MQTTnet's packet to this delivery even when
    // MQTTnet renumbers the packet on a reconnect. A device cannot set it: routing drops it from published messages.
    public const string Tag = "$iotgw-delivery";

    public required long Id { get; init; }
    public required string Topic { get; init; }
    public required ReadOnlySequence<byte> Payload { get; init; }
    public required MqttQualityOfServiceLevel Qos { get; init; }
    public required bool Retain { get; init; }
    public DateTimeOffset? ExpiresAt { get; init; }
    public IReadOnlyList<uint>? SubscriptionIdentifiers { get; init; }
    public ForwardedProperties? Properties { get; init; }

    private volatile bool _inFlight;

    // Recorded in the journal (so in the database, or about to be): its removal must be recorded too.
    public bool Journaled { get; set; }

    // Handed to MQTTnet for a connected client, which acknowledges it within moments: not worth a write until it
    // rests (waits in a queue, or its client is away), see SessionJournal.Take.
    public bool InFlight
    {
        get => _inFlight;
        set => _inFlight = value;
    }

    public bool HasExpired(DateTimeOffset now) => ExpiresAt <= now;

    public static DateTimeOffset? ExpiryOf(uint messageExpiryInterval, DateTimeOffset receivedAt) =>
        messageExpiryInterval == 0 ? null : receivedAt.AddSeconds(messageExpiryInterval);

    // What remains of the expiry [MQTT-3.3.2-6], in whole seconds, at least 1 (0 would mean none).
    public uint RemainingExpiryInterval(DateTimeOffset now) =>
        ExpiresAt is { } expiresAt ? (uint)Math.Max(1, Math.Ceiling((expiresAt - now).TotalSeconds)) : 0;

    // The message MQTTnet is handed (with what remains of the expiry).
    public MqttApplicationMessage ToApplicationMessage(DateTimeOffset now, bool tagged)
    {
        var message = new MqttApplicationMessage
        {
            Topic = Topic,
            Payload = Payload,
            QualityOfServiceLevel = Qos,
            Retain = Retain,
            SubscriptionIdentifiers = SubscriptionIdentifiers is { Count: > 0 } ids ? [.. ids] : null,
        };
        Properties?.ApplyTo(message);
        message.MessageExpiryInterval = RemainingExpiryInterval(now);

        if (tagged)
        {
            Span<byte> digits = stackalloc byte[20];
            Utf8Formatter.TryFormat(Id, digits, out var written);
            (message.UserProperties ??= []).Add(new MqttUserProperty(Tag, digits[..written].ToArray().AsMemory()));
        }

        return message;
    }

    // The delivery id of a packet MQTTnet is about to send, taking the tag out of it.
    public static long? TakeTag(MqttPublishPacket packet)
    {
        var properties = packet.UserProperties;
        if (properties is null)
        {
            return null;
        }

        for (var i = properties.Count - 1; i >= 0; i--)
        {
            if (properties[i].Name == Tag)
            {
                var parsed = Utf8Parser.TryParse(properties[i].ValueBuffer.Span, out long id, out _);
                properties.RemoveAt(i);
                if (properties.Count == 0)
                {
                    packet.UserProperties = null;
                }

                return parsed ? id : null;
            }
        }

        return null;
    }

    public StoredBrokerMessage ToStored(string clientId) => new()
    {
        Id = Id,
        ClientId = clientId,
        Topic = Topic,
        Payload = Payload.ToArray(),
        Qos = (int)Qos,
        Retain = Retain,
        ExpiresAt = ExpiresAt,
        Properties = Properties is null && SubscriptionIdentifiers is not { Count: > 0 }
            ? null
            : (Properties?.ToStored(SubscriptionIdentifiers) ?? new StoredProperties { SubscriptionIdentifiers = [.. SubscriptionIdentifiers!] }).ToJson(),
    };

    public static Delivery FromStored(StoredBrokerMessage stored)
    {
        var properties = StoredProperties.FromJson(stored.Properties);
        return new Delivery
        {
            Id = stored.Id,
            Topic = stored.Topic,
            Payload = new ReadOnlySequence<byte>(stored.Payload),
            Qos = (MqttQualityOfServiceLevel)stored.Qos,
            Retain = stored.Retain,
            ExpiresAt = stored.ExpiresAt,
            SubscriptionIdentifiers = properties?.SubscriptionIdentifiers,
            Properties = ForwardedProperties.FromStored(properties),
        };
    }
}

// A client's Last Will as its CONNECT gave it. The broker publishes it itself (MQTTnet is never shown it), so that
// the Will Delay Interval, a session takeover and a restart of the gateway are handled as MQTT 5 says.
internal sealed record WillMessage(
    string Topic,
    byte[] Payload,
    MqttQualityOfServiceLevel Qos,
    bool Retain,
    uint DelaySeconds,
    uint ExpiryInterval,
    ForwardedProperties? Properties)
{
    public static WillMessage? From(MqttConnectPacket connect)
    {
        if (!connect.WillFlag)
        {
            return null;
        }

        var properties = new ForwardedProperties(connect.WillContentType, connect.WillResponseTopic, connect.WillCorrelationData,
            connect.WillPayloadFormatIndicator, connect.WillUserProperties is { Count: > 0 } p ? p : null);
        return new WillMessage(connect.WillTopic, connect.WillMessage ?? [], connect.WillQoS, connect.WillRetain, connect.WillDelayInterval,
            connect.WillMessageExpiryInterval, properties == new ForwardedProperties(null, null, null, MqttPayloadFormatIndicator.Unspecified, null) ? null : properties);
    }

    public MqttApplicationMessage ToApplicationMessage()
    {
        var message = new MqttApplicationMessage
        {
            Topic = Topic,
            Payload = new ReadOnlySequence<byte>(Payload),
            QualityOfServiceLevel = Qos,
            Retain = Retain,
            MessageExpiryInterval = ExpiryInterval,
        };
        Properties?.ApplyTo(message);
        return message;
    }

    public string ToJson() => JsonSerializer.Serialize(new StoredWill
    {
        Topic = Topic,
        Payload = Payload,
        Qos = (int)Qos,
        Retain = Retain,
        DelaySeconds = DelaySeconds,
        Properties = (Properties ?? new ForwardedProperties(null, null, null, MqttPayloadFormatIndicator.Unspecified, null)).ToStored(expiryInterval: ExpiryInterval),
    });

    public static WillMessage? FromJson(string? json)
    {
        if (json is null || JsonSerializer.Deserialize<StoredWill>(json) is not { } stored)
        {
            return null;
        }

        return new WillMessage(stored.Topic, stored.Payload, (MqttQualityOfServiceLevel)stored.Qos, stored.Retain, stored.DelaySeconds,
            stored.Properties?.ExpiryInterval ?? 0, ForwardedProperties.FromStored(stored.Properties));
    }

    private sealed class StoredWill
    {
        public string Topic { get; set; } = "";
        public byte[] Payload { get; set; } = [];
        public int Qos { get; set; }
        public bool Retain { get; set; }
        public uint DelaySeconds { get; set; }
        public StoredProperties? Properties { get; set; }
    }
}
