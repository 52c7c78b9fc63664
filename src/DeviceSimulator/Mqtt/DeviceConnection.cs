using DeviceSimulator.Devices;
using IotGateway.Protocol;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace DeviceSimulator.Mqtt;

// One device's MQTT client: the article's connect options (persistent session under the device id, retained
// SIGN_OUT as Last Will), QoS 2 everywhere, and the two ways of leaving: a clean DISCONNECT, or dropping the
// socket like a device losing power so that the broker publishes the will.
internal sealed class DeviceConnection : IDisposable
{
    public const string SignIn = "SIGN_IN";
    public const string SignOut = "SIGN_OUT";

    // The article's retained presence messages expire after five minutes (MQTT 5 only).
    private const uint PresenceExpirySeconds = 5 * 60;

    // MQTT 5 ends a session at disconnect unless it has an expiry; a day covers any sensible interval.
    private const uint SessionExpirySeconds = 24 * 60 * 60;

    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(10);
    private static readonly MqttClientFactory Factory = new();

    private readonly MqttClientOptions _options;
    private readonly SemaphoreSlim _connectSlots;
    private readonly Func<MqttApplicationMessageReceivedEventArgs, Task> _onMessage;
    private readonly Action _onConnectionLost;
    private IMqttClient _client;

    // Set while we close on purpose, so that the Disconnected event is not mistaken for a lost connection.
    private volatile bool _closing;

    public DeviceConnection(
        DeviceSettings settings,
        DeviceTopics topics,
        SemaphoreSlim connectSlots,
        Func<MqttApplicationMessageReceivedEventArgs, Task> onMessage,
        Action onConnectionLost)
    {
        _options = BuildOptions(settings, topics);
        _connectSlots = connectSlots;
        _onMessage = onMessage;
        _onConnectionLost = onConnectionLost;
        _client = NewClient();
    }

    public bool IsConnected => _client.IsConnected;

    public MqttProtocolVersion Protocol => _options.ProtocolVersion;

    // One attempt; null when connected, else why not. Waits for a connect slot so a fleet does not storm the broker.
    // Only that wait is cancellable: MQTT operations here end by their own timeout, never half-way on Ctrl+C,
    // because an MQTTnet operation cancelled half-way can tear the connection down, and the broker then
    // publishes our will (the tests caught exactly that).
    public async Task<string?> TryConnectAsync(CancellationToken cancellationToken)
    {
        await _connectSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _closing = false;
            using var timeout = new CancellationTokenSource(ConnectTimeout);
            var result = await _client.ConnectAsync(_options, timeout.Token).ConfigureAwait(false);
            return result.ResultCode == MqttClientConnectResultCode.Success ? null : $"refused: {result.ResultCode}";
        }
        catch (Exception ex)
        {
            return ex is OperationCanceledException ? "timed out" : ex.GetBaseException().Message;
        }
        finally
        {
            _connectSlots.Release();
        }
    }

    public async Task SubscribeAsync(string topic)
    {
        using var timeout = new CancellationTokenSource(OperationTimeout);
        var result = await _client.SubscribeAsync(topic, MqttQualityOfServiceLevel.ExactlyOnce, timeout.Token).ConfigureAwait(false);
        var code = result.Items.Single().ResultCode;
        if ((int)code > (int)MqttClientSubscribeResultCode.GrantedQoS2)
        {
            throw new InvalidOperationException($"the broker refused the subscription to {topic}: {code}");
        }
    }

    public Task PublishAsync(string topic, byte[] payload) => PublishAsync(Message(topic, payload).Build());

    // SIGN_IN / SIGN_OUT on the register topic, retained, as the article's retainPubOpts.
    public Task PublishPresenceAsync(string topic, string presence)
    {
        var message = Message(topic, System.Text.Encoding.UTF8.GetBytes(presence)).WithRetainFlag();
        if (Protocol == MqttProtocolVersion.V500)
        {
            message.WithMessageExpiryInterval(PresenceExpirySeconds);
        }

        return PublishAsync(message.Build());
    }

    public async Task DisconnectAsync()
    {
        _closing = true;
        using var timeout = new CancellationTokenSource(OperationTimeout);
        await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(MqttClientDisconnectOptionsReason.NormalDisconnection).Build(), timeout.Token)
            .ConfigureAwait(false);
    }

    // Closes the socket without a DISCONNECT packet, under MQTT 3.1.1 and 5 alike, as a device that loses power
    // would: the broker then publishes the Last Will. MQTTnet's Dispose does exactly that, so the client is
    // replaced by a fresh one for the next connection.
    public void Drop()
    {
        _closing = true;
        var dropped = _client;
        _client = NewClient();
        DisposeClient(dropped);
    }

    public void Dispose() => DisposeClient(_client);

    // MQTTnet 5.2 races itself when a disconnect is still being cleaned up: Dispose then cancels a cancellation
    // source that cleanup already disposed.
    private static void DisposeClient(IMqttClient client)
    {
        try
        {
            client.Dispose();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task PublishAsync(MqttApplicationMessage message)
    {
        using var timeout = new CancellationTokenSource(OperationTimeout);
        var result = await _client.PublishAsync(message, timeout.Token).ConfigureAwait(false);
        if (result.ReasonCode is not (MqttClientPublishReasonCode.Success or MqttClientPublishReasonCode.NoMatchingSubscribers))
        {
            throw new InvalidOperationException($"the broker refused the message on {message.Topic}: {result.ReasonCode}");
        }
    }

    private IMqttClient NewClient()
    {
        var client = Factory.CreateMqttClient();
        // Attached before any ConnectAsync: a persistent session delivers its backlog the moment the connection opens.
        client.ApplicationMessageReceivedAsync += _onMessage;
        client.DisconnectedAsync += e =>
        {
            // Only a hint, checked against IsConnected by the device: MQTTnet may report the end of a connection
            // after the next one has started, and a dropped client may report its end late too.
            if (ReferenceEquals(client, _client) && e.ClientWasConnected && !_closing && !client.IsConnected)
            {
                _onConnectionLost();
            }

            return Task.CompletedTask;
        };
        return client;
    }

    private static MqttApplicationMessageBuilder Message(string topic, byte[] payload) =>
        new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload(payload)
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce);

    private static MqttClientOptions BuildOptions(DeviceSettings settings, DeviceTopics topics)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithClientId(settings.DeviceId)
            .WithProtocolVersion(settings.Protocol)
            .WithCleanStart(false)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(30))
            .WithTimeout(ConnectTimeout)
            .WithWillTopic(topics.Register)
            .WithWillPayload(SignOut)
            .WithWillRetain()
            .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce);

        if (settings.Protocol == MqttProtocolVersion.V500)
        {
            builder.WithSessionExpiryInterval(SessionExpirySeconds);
        }

        var broker = settings.Broker;
        if (broker.Transport == BrokerTransport.WebSocket)
        {
            builder.WithWebSocketServer(ws => ws.WithUri(broker.WebSocketUri));
        }
        else
        {
            builder.WithTcpServer(broker.Host, broker.Port);
        }

        if (broker.UseTls)
        {
            builder.WithTlsOptions(tls =>
            {
                tls.UseTls();
                if (settings.AllowUntrustedCertificates)
                {
                    tls.WithCertificateValidationHandler(_ => true);
                }
            });
        }

        var username = settings.Username ?? broker.Username;
        if (username is not null)
        {
            builder.WithCredentials(username, settings.Password ?? broker.Password);
        }

        var options = builder.Build();
        // Small write buffers: a telemetry reading is ~200 bytes, and a fleet holds ten thousand clients.
        options.WriterBufferSize = 1024;
        return options;
    }
}
