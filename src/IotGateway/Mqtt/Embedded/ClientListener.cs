using System.Net;
using System.Security.Cryptography.X509Certificates;
using MQTTnet.Adapter;
using MQTTnet.Diagnostics.Logger;
using MQTTnet.Diagnostics.PacketInspection;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Internal;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IotGateway.Mqtt.Embedded;

// MQTTnet's own listener, with each connection handed to the server through ClientChannel: the one place where a
// client's CONNECT can be read and adjusted before MQTTnet acts on it (IMqttServerAdapter and IMqttChannelAdapter
// are MQTTnet's public transport seams; MQTTnet.AspNetCore plugs in the same way).
internal sealed class ClientListener(IMqttServerAdapter listener, string gatewayClientId) : IMqttServerAdapter
{
    public Func<IMqttChannelAdapter, Task>? ClientHandler { get; set; }

    public Task StartAsync(MqttServerOptions options, IMqttNetLogger logger)
    {
        listener.ClientHandler = channel => ClientHandler is { } handler ? handler(new ClientChannel(channel, logger, gatewayClientId)) : Task.CompletedTask;
        return listener.StartAsync(options, logger);
    }

    public Task StopAsync() => listener.StopAsync();

    public void Dispose() => listener.Dispose();
}

// One client's connection. Its first packet, the CONNECT, is recorded (ClientConnection) and adjusted so that
// MQTTnet leaves to the broker what it would do wrong:
// - the Last Will is removed: MQTTnet publishes it at once, ignoring the Will Delay Interval, and never on a
//   session takeover; the broker publishes it (SessionRegistry);
// - a session expiry above 0 becomes "never": MQTTnet expires a session by the interval of the CONNECT that created
//   it, ignoring later CONNECTs and the DISCONNECT; the broker expires sessions itself;
// - an MQTT 3.1.1 client with an empty id and a clean session gets an id [MQTT-3.1.3-6], and one with an empty id
//   and no clean session gets CONNACK "identifier rejected" [MQTT-3.1.3-8] (MQTTnet closes the socket instead).
// MQTTnet decodes a DISCONNECT's absent Session Expiry Interval and an explicit 0 alike, so the raw DISCONNECT is
// read through the channel's packet inspector; only where it matters (MQTT 5, an expiry above 0), and never on the
// gateway's own connection, which carries all the telemetry and never changes its expiry.
// MQTTnet offers no way to withdraw a message it holds for a client; the channel hands it the acknowledgement the
// client would have sent for one the broker decided not to send (Acknowledge).
internal sealed class ClientChannel : IMqttChannelAdapter
{
    private readonly IMqttChannelAdapter _inner;
    private readonly string _gatewayClientId;
    private readonly System.Collections.Concurrent.ConcurrentQueue<MqttPacket> _madeUp = new();
    private bool _connectSeen;
    private byte[]? _rawConnect;

    public ClientChannel(IMqttChannelAdapter inner, IMqttNetLogger logger, string gatewayClientId)
    {
        _inner = inner;
        _gatewayClientId = gatewayClientId;
        if (inner is MqttChannelAdapter adapter)
        {
            var inspected = new AsyncEvent<InspectMqttPacketEventArgs>();
            inspected.AddHandler(OnInspected);
            adapter.PacketInspector = new MqttPacketInspector(inspected, logger);
        }
    }

    // What the CONNECT asked for; null until it has been received.
    public ClientConnection? Connection { get; private set; }

    public long BytesReceived => _inner.BytesReceived;
    public long BytesSent => _inner.BytesSent;
    public X509Certificate2 ClientCertificate => _inner.ClientCertificate;
    public EndPoint RemoteEndPoint => _inner.RemoteEndPoint;
    public EndPoint LocalEndPoint => _inner.LocalEndPoint;
    public bool IsSecureConnection => _inner.IsSecureConnection;
    public MqttPacketFormatterAdapter PacketFormatterAdapter => _inner.PacketFormatterAdapter;

    public Task ConnectAsync(CancellationToken cancellationToken) => _inner.ConnectAsync(cancellationToken);

    public Task DisconnectAsync(CancellationToken cancellationToken) => _inner.DisconnectAsync(cancellationToken);

    public void ResetStatistics() => _inner.ResetStatistics();

    public Task SendPacketAsync(MqttPacket packet, CancellationToken cancellationToken) => _inner.SendPacketAsync(packet, cancellationToken);

    public Task<MqttPacket> ReceivePacketAsync(CancellationToken cancellationToken) =>
        !_connectSeen ? ReceiveConnectAsync(cancellationToken)
        : _madeUp.TryDequeue(out var packet) ? Task.FromResult(packet)
        : _inner.ReceivePacketAsync(cancellationToken);

    // Retires a message MQTTnet holds for the client but the broker decided not to send (BrokerSession.OnSending):
    // MQTTnet is handed the acknowledgement the client would have sent, before the next packet the client sends
    // (at the latest its PINGREQ), and forgets the message as delivered.
    public void Acknowledge(MqttPublishPacket packet) => _madeUp.Enqueue(packet.QualityOfServiceLevel == MqttQualityOfServiceLevel.ExactlyOnce
        ? new MqttPubCompPacket { PacketIdentifier = packet.PacketIdentifier }
        : new MqttPubAckPacket { PacketIdentifier = packet.PacketIdentifier });

    public void Dispose() => _inner.Dispose();

    private async Task<MqttPacket> ReceiveConnectAsync(CancellationToken cancellationToken)
    {
        _connectSeen = true;
        MqttPacket packet;
        try
        {
            packet = await _inner.ReceivePacketAsync(cancellationToken);
        }
        catch (MqttProtocolViolationException) when (RawPackets.IsMqtt311ConnectWithEmptyIdAndNoCleanSession(_rawConnect))
        {
            await _inner.SendPacketAsync(new MqttConnAckPacket
            {
                ReturnCode = MqttConnectReturnCode.ConnectionRefusedIdentifierRejected,
                ReasonCode = MqttConnectReasonCode.ClientIdentifierNotValid,
            }, cancellationToken);
            return null!; // MQTTnet ends a connection whose first packet is missing
        }

        if (packet is MqttConnectPacket connect)
        {
            Connection = Prepare(connect);
        }

        if (Connection is not { Protocol: MqttProtocolVersion.V500, SessionExpirySeconds: > 0 } || Connection.ClientId == _gatewayClientId)
        {
            StopInspecting();
        }

        _rawConnect = null;
        return packet!;
    }

    private ClientConnection Prepare(MqttConnectPacket connect)
    {
        var protocol = _inner.PacketFormatterAdapter.ProtocolVersion;
        if (protocol != MqttProtocolVersion.V500 && string.IsNullOrEmpty(connect.ClientId) && connect.CleanSession)
        {
            connect.ClientId = SessionRegistry.NewClientId();
        }

        var connection = ClientConnection.From(RemoteEndPoint, protocol, connect, this);
        connect.WillFlag = false;
        if (protocol == MqttProtocolVersion.V500 && connect.SessionExpiryInterval > 0)
        {
            connect.SessionExpiryInterval = ClientConnection.NeverExpires;
        }

        return connection;
    }

    private void OnInspected(InspectMqttPacketEventArgs e)
    {
        if (e.Direction != MqttPacketFlowDirection.Inbound)
        {
            return;
        }

        if (Connection is null)
        {
            _rawConnect = e.Buffer;
        }
        else if (RawPackets.IsDisconnect(e.Buffer))
        {
            Connection.DisconnectSessionExpirySeconds = RawPackets.DisconnectSessionExpiry(e.Buffer);
        }
    }

    private void StopInspecting()
    {
        if (_inner is MqttChannelAdapter adapter)
        {
            adapter.PacketInspector = null;
        }
    }
}

// The few bytes of raw packets the broker reads itself (MQTT 3.1.1 section 3.1, MQTT 5 sections 3.14 and 2.2.2).
internal static class RawPackets
{
    private const byte SessionExpiryInterval = 0x11;

    public static bool IsDisconnect(byte[] packet) => packet.Length > 0 && packet[0] >> 4 == (int)MqttControlPacketType.Disconnect;

    public static bool IsMqtt311ConnectWithEmptyIdAndNoCleanSession(byte[]? packet)
    {
        if (packet is null || packet.Length < 2 || packet[0] >> 4 != (int)MqttControlPacketType.Connect || !TrySkipVariableInteger(packet, 1, out var at))
        {
            return false;
        }

        // Protocol name, level, connect flags, keep alive, then the client id's length.
        if (!TryReadUInt16(packet, at, out var nameLength))
        {
            return false;
        }

        at += 2 + nameLength;
        if (at + 6 > packet.Length)
        {
            return false;
        }

        var level = packet[at];
        var flags = packet[at + 1];
        return level is 3 or 4 && (flags & 0x02) == 0 && TryReadUInt16(packet, at + 4, out var idLength) && idLength == 0;
    }

    // The Session Expiry Interval property of an MQTT 5 DISCONNECT; null when absent (or unreadable).
    public static uint? DisconnectSessionExpiry(byte[] packet)
    {
        if (!TrySkipVariableInteger(packet, 1, out var at) || at + 1 >= packet.Length)
        {
            return null; // no reason code, hence no properties
        }

        at++; // reason code
        if (!TryReadVariableInteger(packet, at, out var propertiesLength, out at))
        {
            return null;
        }

        var end = Math.Min(packet.Length, at + propertiesLength);
        while (at < end)
        {
            var id = packet[at++];
            switch (id)
            {
                case SessionExpiryInterval when at + 4 <= end:
                    return (uint)((packet[at] << 24) | (packet[at + 1] << 16) | (packet[at + 2] << 8) | packet[at + 3]);
                case 0x1F or 0x1C when TryReadUInt16(packet, at, out var length): // reason string, server reference
                    at += 2 + length;
                    break;
                case 0x26 when TryReadUInt16(packet, at, out var nameLength) && TryReadUInt16(packet, at + 2 + nameLength, out var valueLength): // user property
                    at += 4 + nameLength + valueLength;
                    break;
                default:
                    return null;
            }
        }

        return null;
    }

    private static bool TryReadUInt16(byte[] packet, int at, out int value)
    {
        value = at + 1 < packet.Length ? (packet[at] << 8) | packet[at + 1] : 0;
        return at + 1 < packet.Length;
    }

    private static bool TrySkipVariableInteger(byte[] packet, int at, out int next) => TryReadVariableInteger(packet, at, out _, out next);

    private static bool TryReadVariableInteger(byte[] packet, int at, out int value, out int next)
    {
        value = 0;
        for (var shift = 0; shift < 28 && at < packet.Length; shift += 7)
        {
            var b = packet[at++];
            value |= (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                next = at;
                return true;
            }
        }

        next = at;
        return false;
    }
}
