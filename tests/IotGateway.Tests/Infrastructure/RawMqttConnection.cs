using System.Net.Sockets;
using System.Text;

namespace IotGateway.Tests.Infrastructure;

/// <summary>
/// A bare TCP connection that writes MQTT packets byte by byte, for what MQTTnet's client will not send: an
/// explicit Session Expiry Interval of 0 on DISCONNECT (it omits a 0), an MQTT 3.1.1 CONNECT with an empty client
/// id and no clean session, a client that stops talking within its keep-alive.
/// </summary>
public sealed class RawMqttConnection : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private RawMqttConnection(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<RawMqttConnection> OpenAsync(string host, int port)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(host, port);
        return new RawMqttConnection(tcp);
    }

    public async Task SendAsync(byte[] packet) => await _stream.WriteAsync(packet);

    /// <summary>The next whole packet, or null when the broker closed the connection.</summary>
    public async Task<byte[]?> ReceiveAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var header = new byte[1];
            if (await _stream.ReadAsync(header, cts.Token) == 0)
            {
                return null;
            }

            var packet = new List<byte> { header[0] };
            int length = 0, shift = 0;
            while (true)
            {
                if (await _stream.ReadAsync(header, cts.Token) == 0)
                {
                    return null;
                }

                packet.Add(header[0]);
                length |= (header[0] & 0x7F) << shift;
                shift += 7;
                if ((header[0] & 0x80) == 0)
                {
                    break;
                }
            }

            var body = new byte[length];
            await _stream.ReadExactlyAsync(body, cts.Token);
            packet.AddRange(body);
            return [.. packet];
        }
        catch (Exception e) when (e is IOException or EndOfStreamException or SocketException)
        {
            return null;
        }
    }

    /// <summary>Connects and returns the CONNACK: (session present, reason or return code).</summary>
    public async Task<(bool SessionPresent, byte Code)> ConnectAsync(byte[] connect, TimeSpan timeout)
    {
        await SendAsync(connect);
        var connack = await ReceiveAsync(timeout) ?? throw new InvalidOperationException("The broker closed the connection without a CONNACK.");
        if (connack[0] >> 4 != 2)
        {
            throw new InvalidOperationException($"Expected CONNACK, got packet type {connack[0] >> 4}.");
        }

        return ((connack[2] & 0x01) != 0, connack[3]);
    }

    public static byte[] Connect311(string clientId, bool cleanSession, ushort keepAlive = 60) =>
        Packet(0x10, [.. Utf8("MQTT"), 4, (byte)(cleanSession ? 0x02 : 0x00), .. UInt16(keepAlive), .. Utf8(clientId)]);

    public static byte[] Connect5(string clientId, bool cleanStart, uint? sessionExpiry = null, ushort keepAlive = 60,
        (string Topic, string Payload)? will = null)
    {
        var flags = (byte)((cleanStart ? 0x02 : 0) | (will is null ? 0 : 0x04));
        byte[] properties = sessionExpiry is { } seconds ? [0x11, .. UInt32(seconds)] : [];
        byte[] payload = [.. Utf8(clientId)];
        if (will is { } w)
        {
            payload = [.. payload, 0, .. Utf8(w.Topic), .. UInt16((ushort)Encoding.UTF8.GetByteCount(w.Payload)), .. Encoding.UTF8.GetBytes(w.Payload)];
        }

        return Packet(0x10, [.. Utf8("MQTT"), 5, flags, .. UInt16(keepAlive), .. VariableInteger(properties.Length), .. properties, .. payload]);
    }

    /// <summary>An MQTT 5 QoS 2 PUBLISH, marked as sent before (DUP) or not.</summary>
    public static byte[] PublishQos2(string topic, string payload, ushort packetId, bool dup) =>
        Packet((byte)(0x34 | (dup ? 0x08 : 0)), [.. Utf8(topic), .. UInt16(packetId), 0, .. Encoding.UTF8.GetBytes(payload)]);

    public static byte[] PubRel(ushort packetId) => Packet(0x62, [.. UInt16(packetId)]);

    /// <summary>An MQTT 5 DISCONNECT (reason 0x00) with or without a Session Expiry Interval property.</summary>
    public static byte[] Disconnect5(uint? sessionExpiry)
    {
        byte[] properties = sessionExpiry is { } seconds ? [0x11, .. UInt32(seconds)] : [];
        return Packet(0xE0, [0x00, .. VariableInteger(properties.Length), .. properties]);
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }

    private static byte[] Packet(byte type, byte[] body) => [type, .. VariableInteger(body.Length), .. body];

    private static byte[] Utf8(string text) => [.. UInt16((ushort)Encoding.UTF8.GetByteCount(text)), .. Encoding.UTF8.GetBytes(text)];

    private static byte[] UInt16(ushort value) => [(byte)(value >> 8), (byte)value];

    private static byte[] UInt32(uint value) => [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value];

    private static byte[] VariableInteger(int value)
    {
        var bytes = new List<byte>();
        do
        {
            var b = (byte)(value % 128);
            value /= 128;
            bytes.Add(value > 0 ? (byte)(b | 0x80) : b);
        }
        while (value > 0);
        return [.. bytes];
    }
}
