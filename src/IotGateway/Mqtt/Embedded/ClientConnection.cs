using System.Net;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Server;

namespace IotGateway.Mqtt.Embedded;

// One network connection of a client, as its CONNECT asked for it (read before MQTTnet sees the packet, see
// ClientListener), and what the broker learns about it later.
internal sealed class ClientConnection
{
    public const uint NeverExpires = uint.MaxValue;

    private ClientConnection(EndPoint endpoint, MqttProtocolVersion protocol, MqttConnectPacket connect, ClientChannel channel)
    {
        Channel = channel;
        Endpoint = endpoint;
        Protocol = protocol;
        ClientId = connect.ClientId ?? "";
        CleanStart = connect.CleanSession;
        // MQTT 3.1.1 has no expiry: a clean session ends with its connection, any other lasts until a clean start.
        SessionExpirySeconds = protocol == MqttProtocolVersion.V500 ? connect.SessionExpiryInterval : connect.CleanSession ? 0 : NeverExpires;
        KeepAliveSeconds = connect.KeepAlivePeriod;
        ReceiveMaximum = connect.ReceiveMaximum == 0 ? ushort.MaxValue : connect.ReceiveMaximum;
        MaximumPacketSize = connect.MaximumPacketSize;
        Will = WillMessage.From(connect);
        Username = connect.Username;
    }

    private MqttPacketFormatterAdapter? _encoder;

    public EndPoint Endpoint { get; }
    public ClientChannel Channel { get; }
    public MqttProtocolVersion Protocol { get; }

    // Set when the broker assigns one (an empty id).
    public string ClientId { get; set; }
    public bool CleanStart { get; }
    public uint SessionExpirySeconds { get; }
    public ushort KeepAliveSeconds { get; }

    // How many QoS 1 and 2 messages may await the client's acknowledgement (65,535 when it gives none).
    public ushort ReceiveMaximum { get; }

    // The largest packet the client accepts; 0: no limit.
    public uint MaximumPacketSize { get; }
    public WillMessage? Will { get; }
    public string? Username { get; }

    // The Session Expiry Interval the client's DISCONNECT carried, when it carried one (null: absent).
    public uint? DisconnectSessionExpirySeconds { get; set; }

    // Set by the inbound interceptor for the PUBLISH MQTTnet is about to route: a QoS 2 message sent again.
    public bool RoutingResentQos2 { get; set; }

    // The Subscription Identifier of the SUBSCRIBE being processed (it belongs to the packet, not to each filter).
    public uint SubscriptionIdentifier { get; set; }

    // The filters of that SUBSCRIBE accepted so far that the session did not have (MQTTnet reports them to the
    // session only once the whole packet is through): they count towards MaxSubscriptionsPerClient.
    public HashSet<string> NewFiltersInPacket { get; } = new(StringComparer.Ordinal);

    // MQTTnet's handle on the session, once the client is connected; messages are handed to MQTTnet through it.
    public MqttSessionStatus? Session { get; set; }

    // The session expiry in force when this connection ends: a DISCONNECT may change it [MQTT-3.14.2-2 allows it
    // unless the CONNECT said 0]; a connection that ends any other way keeps the CONNECT's.
    public uint SessionExpiryAtEnd =>
        SessionExpirySeconds == 0 ? 0 : DisconnectSessionExpirySeconds ?? SessionExpirySeconds;

    // Whether a message fits the client's Maximum Packet Size, measured by encoding it as MQTTnet will.
    // Called with the session's lock held (one encoder per connection).
    public bool Fits(MQTTnet.MqttApplicationMessage message)
    {
        if (MaximumPacketSize == 0)
        {
            return true;
        }

        var packet = new MqttPublishPacket
        {
            Topic = message.Topic,
            Payload = message.Payload,
            QualityOfServiceLevel = message.QualityOfServiceLevel,
            PacketIdentifier = message.QualityOfServiceLevel > 0 ? (ushort)1 : (ushort)0,
            Retain = message.Retain,
            ContentType = message.ContentType,
            CorrelationData = message.CorrelationData,
            MessageExpiryInterval = message.MessageExpiryInterval,
            PayloadFormatIndicator = message.PayloadFormatIndicator,
            ResponseTopic = message.ResponseTopic,
            SubscriptionIdentifiers = message.SubscriptionIdentifiers,
            UserProperties = message.UserProperties?.Where(p => p.Name != Delivery.Tag).ToList(),
        };
        _encoder ??= new MqttPacketFormatterAdapter(Protocol, new MqttBufferWriter(4096, 65536));
        try
        {
            return _encoder.Encode(packet).Length <= MaximumPacketSize;
        }
        finally
        {
            _encoder.Cleanup();
        }
    }

    public static ClientConnection From(EndPoint endpoint, MqttProtocolVersion protocol, MqttConnectPacket connect, ClientChannel channel) =>
        new(endpoint, protocol, connect, channel);

    public override string ToString() => $"{ClientId} ({Endpoint})";
}
