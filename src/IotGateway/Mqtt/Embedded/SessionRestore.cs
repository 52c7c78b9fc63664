using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using MQTTnet.Adapter;
using MQTTnet.Diagnostics.Logger;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IotGateway.Mqtt.Embedded;

// MQTTnet keeps sessions in memory and offers no way to create one without a client. After a restart each stored
// session is opened again the way its client would: an in-process connection (an MQTTnet transport, like the TCP
// listener) sends CONNECT with clean start off, the session's subscriptions, and DISCONNECT. MQTTnet then holds the
// session as before, and the client's next CONNECT finds it (session present). The queued messages are not sent
// through it: the broker keeps them and hands them over when the client is back (BrokerSession).
internal sealed class SessionRestore : IMqttServerAdapter
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public Func<IMqttChannelAdapter, Task>? ClientHandler { get; set; }

    public Task StartAsync(MqttServerOptions options, IMqttNetLogger logger) => Task.CompletedTask;

    public Task StopAsync() => Task.CompletedTask;

    public void Dispose()
    {
    }

    public async Task RestoreAsync(string clientId, string? username, IReadOnlyCollection<Subscription> subscriptions, CancellationToken cancellationToken)
    {
        var handler = ClientHandler ?? throw new InvalidOperationException("The broker is not started.");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        using var channel = new RestoreChannel(clientId);
        var connection = handler(channel);

        channel.Receive(new MqttConnectPacket
        {
            ClientId = clientId,
            CleanSession = false,
            SessionExpiryInterval = ClientConnection.NeverExpires,
            Username = username,
        });
        var connack = await channel.NextSentAsync<MqttConnAckPacket>(timeout.Token);
        if (connack.ReasonCode != MqttConnectReasonCode.Success)
        {
            throw new InvalidOperationException($"the broker refused to open the session again: {connack.ReasonCode}");
        }

        ushort packetId = 0;
        // One SUBSCRIBE per subscription identifier: the identifier belongs to the packet. No retained messages:
        // the client had them when it subscribed.
        foreach (var group in subscriptions.GroupBy(s => s.Identifier))
        {
            var subscribe = new MqttSubscribePacket { PacketIdentifier = ++packetId, SubscriptionIdentifier = group.Key };
            subscribe.TopicFilters.AddRange(group.Select(s => new MqttTopicFilter
            {
                Topic = s.TopicFilter,
                QualityOfServiceLevel = s.Qos,
                NoLocal = s.NoLocal,
                RetainAsPublished = s.RetainAsPublished,
                RetainHandling = MqttRetainHandling.DoNotSendOnSubscribe,
            }));
            channel.Receive(subscribe);
            await channel.NextSentAsync<MqttSubAckPacket>(timeout.Token);
        }

        channel.Receive(new MqttDisconnectPacket { ReasonCode = MqttDisconnectReasonCode.NormalDisconnection });
        await connection.WaitAsync(timeout.Token);
    }

    // Events MQTTnet raises for these connections are the broker's own doing, not a client's.
    public static bool IsRestoreEndpoint(EndPoint? endpoint) => endpoint is RestoreEndPoint;

    private sealed class RestoreEndPoint(string clientId) : EndPoint
    {
        public override string ToString() => $"restore:{clientId}";
    }

    private sealed class RestoreChannel(string clientId) : IMqttChannelAdapter
    {
        private readonly Channel<MqttPacket> _received = Channel.CreateUnbounded<MqttPacket>();
        private readonly Channel<MqttPacket> _sent = Channel.CreateUnbounded<MqttPacket>();

        public long BytesReceived => 0;
        public long BytesSent => 0;
        public X509Certificate2 ClientCertificate => null!;
        public EndPoint RemoteEndPoint { get; } = new RestoreEndPoint(clientId);
        public EndPoint LocalEndPoint => RemoteEndPoint;
        public bool IsSecureConnection => true;
        public MqttPacketFormatterAdapter PacketFormatterAdapter { get; } = new(MqttProtocolVersion.V500, new MqttBufferWriter(256, 4096));

        public void Receive(MqttPacket packet) => _received.Writer.TryWrite(packet);

        public async Task<T> NextSentAsync<T>(CancellationToken cancellationToken) where T : MqttPacket
        {
            while (true)
            {
                if (await _sent.Reader.ReadAsync(cancellationToken) is T packet)
                {
                    return packet;
                }
            }
        }

        public Task ConnectAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task DisconnectAsync(CancellationToken cancellationToken)
        {
            _received.Writer.TryComplete();
            return Task.CompletedTask;
        }

        public async Task<MqttPacket> ReceivePacketAsync(CancellationToken cancellationToken)
        {
            try
            {
                return await _received.Reader.ReadAsync(cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                return null!; // the connection is over
            }
        }

        public void ResetStatistics()
        {
        }

        public Task SendPacketAsync(MqttPacket packet, CancellationToken cancellationToken)
        {
            _sent.Writer.TryWrite(packet);
            return Task.CompletedTask;
        }

        public void Dispose() => _received.Writer.TryComplete();
    }
}
