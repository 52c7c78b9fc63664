using IotGateway.Ingest;
using IotGateway.Observability;
using IotGateway.Protocol;
using MQTTnet;
using MQTTnet.Formatter;
using MQTTnet.Protocol;

namespace IotGateway.Mqtt;

public sealed class BrokerUnavailableException(string message) : Exception(message);

public sealed record BrokerConnectionState(bool Connected, DateTimeOffset Since, string? LastError);

// The one long-lived MQTT client: a persistent session that subscribes to the device topics, hands every
// message to the ingest queue unacknowledged, and publishes commands for the dispatcher. It reconnects
// from its own loop (never from the Disconnected event) with capped, jittered exponential backoff.
public sealed partial class MqttConnection : BackgroundService, IAsyncDisposable
{
    private static readonly TimeSpan HealthCheckInterval = TimeSpan.FromSeconds(2);

    private readonly MqttOptions _options;
    private readonly BrokerAddress _broker;
    private readonly TopicLayout _topics;
    private readonly IngestQueue _ingest;
    private readonly IngestOptions _ingestOptions;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<MqttConnection> _logger;
    private readonly IMqttClient _client;
    private readonly SemaphoreSlim _inflight;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly BufferedChannelAdapterFactory _channels = new();
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _connected = NewConnectedSignal();
    private long _generation;
    private BrokerConnectionState _state;
    private Task _disconnectOnStop = Task.CompletedTask;

    private readonly EmbeddedBroker _embedded;
    private readonly DatabaseStartup _database;

    public MqttConnection(IOptions<MqttOptions> options, IOptions<IngestOptions> ingestOptions, TopicLayout topics,
        IngestQueue ingest, EmbeddedBroker embedded, DatabaseStartup database, GatewayMetrics metrics, TimeProvider time, ILogger<MqttConnection> logger)
    {
        _embedded = embedded;
        _database = database;
        _options = options.Value;
        _broker = BrokerAddress.TryParse(_options.Broker, out var broker, out var error)
            ? broker
            : throw new OptionsValidationException(MqttOptions.Section, typeof(MqttOptions), [error]);
        _ingestOptions = ingestOptions.Value;
        _topics = topics;
        _ingest = ingest;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _inflight = new SemaphoreSlim(_options.MaxInflightPublishes);
        _state = new BrokerConnectionState(false, time.GetUtcNow(), "not connected yet");

        _client = new MqttClientFactory().CreateMqttClient(_channels);
        // Handlers before the first ConnectAsync: a persistent session delivers its backlog at once.
        _client.ConnectingAsync += _ =>
        {
            Interlocked.Increment(ref _generation);
            return Task.CompletedTask;
        };
        _client.ApplicationMessageReceivedAsync += OnMessageReceivedAsync;
        _client.DisconnectedAsync += OnDisconnectedAsync;
    }

    public bool IsConnected => _client.IsConnected;

    // Bumped at every connection attempt; acknowledgements are only sent for the current one.
    public long Generation => Interlocked.Read(ref _generation);

    public BrokerConnectionState State => _state;

    public string BrokerDescription => _broker.IsEmbedded ? $"embedded ({_embedded.ListenAddress})" : _broker.ToString();

    public Task WaitUntilConnectedAsync(CancellationToken cancellationToken) =>
        Volatile.Read(ref _connected).Task.WaitAsync(cancellationToken);

    public async Task<MqttClientPublishResult> PublishAsync(MqttApplicationMessage message, CancellationToken cancellationToken)
    {
        await _inflight.WaitAsync(cancellationToken);
        try
        {
            if (!_client.IsConnected)
            {
                throw new BrokerUnavailableException("The gateway is not connected to the broker.");
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(_options.PublishTimeoutSeconds));
            return await _client.PublishAsync(message, timeout.Token);
        }
        finally
        {
            _inflight.Release();
        }
    }

    // Packets written until the hold is disposed leave together (see BufferedMqttChannel).
    public BufferedMqttChannel.WriteHold HoldWrites() => _channels.Latest?.HoldWrites() ?? default;

    public Task AcknowledgeAsync(InboundMessage message, CancellationToken cancellationToken)
    {
        // A message from an earlier connection carries a packet id the broker no longer expects: it will redeliver it.
        if (message.Source is null || message.Qos == MqttQualityOfServiceLevel.AtMostOnce || message.Generation != Generation)
        {
            return Task.CompletedTask;
        }

        try
        {
            var ack = message.Source.AcknowledgeAsync(cancellationToken);
            return ack.IsCompletedSuccessfully ? ack : ObserveAckAsync(ack);
        }
        catch (Exception ex)
        {
            LogAckFailed(ex.Message);
            return Task.CompletedTask;
        }
    }

    private async Task ObserveAckAsync(Task ack)
    {
        try
        {
            await ack;
        }
        catch (Exception ex)
        {
            // The connection went away between commit and ack; the broker redelivers and dedup absorbs it.
            LogAckFailed(ex.Message);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var link = stoppingToken.Register(_stopping.Cancel);
        var clientOptions = BuildClientOptions();
        var failures = 0;

        // Messages taken from the session before they can be stored would only pile up unacknowledged.
        if (!_database.IsReady)
        {
            SetState(false, "waiting for the database");
            try
            {
                await _database.Ready.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        // The embedded broker accepts clients once it has restored the sessions it kept.
        if (!_embedded.Ready.IsCompleted)
        {
            SetState(false, "waiting for the embedded broker");
            try
            {
                await _embedded.Ready.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        LogStarting(BrokerDescription, _options.ClientId, _options.ProtocolVersion);

        while (!stoppingToken.IsCancellationRequested)
        {
            if (!_client.IsConnected)
            {
                if (await TryConnectAsync(clientOptions, stoppingToken))
                {
                    failures = 0;
                }
                else
                {
                    var delay = ReconnectDelay(failures++);
                    LogReconnectScheduled(delay.TotalSeconds, failures);
                    await DelayAsync(delay, stoppingToken);
                    continue;
                }
            }

            // Woken early by a disconnect; MQTTnet's keep-alive finds half-open connections.
            await ((Task)_wake.WaitAsync(HealthCheckInterval, stoppingToken)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    // A clean stop in a shared-subscription group: unsubscribe from the shared topics first, so the broker hands this
    // instance's share to the others while it is away (Mosquitto would otherwise queue it in this session until it
    // returns). Called by the ingest writer before its last flush, so what arrived before the UNSUBACK is stored.
    public async Task LeaveSharedGroupAsync(CancellationToken cancellationToken)
    {
        if (!_topics.SharesSubscriptions || !_client.IsConnected)
        {
            return;
        }

        try
        {
            var options = new MqttClientUnsubscribeOptionsBuilder();
            foreach (var filter in _topics.SharedFilters)
            {
                options.WithTopicFilter(filter);
            }

            await _client.UnsubscribeAsync(options.Build(), cancellationToken);
            LogLeftGroup(_options.SharedSubscriptionGroup!);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Not connected any more: the broker queues this instance's share until it returns, as after a crash.
            LogLeaveFailed(ex.GetBaseException().Message);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_client.IsConnected)
        {
            // A normal disconnect keeps the persistent session: the broker queues for us until we return.
            var disconnect = _client.TryDisconnectAsync(MqttClientDisconnectOptionsReason.NormalDisconnection, "gateway stopping");
            _disconnectOnStop = disconnect;
            await disconnect;
            LogDisconnectedOnStop();
        }
    }

    // A host can dispose its services while a second StopAsync is still disconnecting (WebApplication.RunAsync and
    // a test host both stop it). The DISCONNECT packet and the last acks may still be queued in BufferedMqttChannel;
    // disposing the client then would close the socket under them, so disposal waits for the disconnect.
    public async ValueTask DisposeAsync()
    {
        await _disconnectOnStop;
        Dispose();
    }

    public override void Dispose()
    {
        try
        {
            _client.Dispose();
        }
        catch (ObjectDisposedException)
        {
            // MQTTnet 5.2 races itself here: the cleanup of a disconnect that is still finishing disposes the
            // client's cancellation source, and Dispose then cancels it. Seen as a failed host shutdown in tests.
        }

        _stopping.Dispose();
        _inflight.Dispose();
        _wake.Dispose();
        base.Dispose();
    }

    private async Task<bool> TryConnectAsync(MqttClientOptions clientOptions, CancellationToken stoppingToken)
    {
        try
        {
            var result = await _client.ConnectAsync(clientOptions, stoppingToken);
            if (result.ResultCode != MqttClientConnectResultCode.Success)
            {
                // A refused CONNACK does not throw.
                SetState(false, $"broker refused the connection: {result.ResultCode} {result.ReasonString}".TrimEnd());
                LogConnectRefused(result.ResultCode, result.ReasonString);
                return false;
            }

            LogConnected(BrokerDescription, result.IsSessionPresent);
            // In a group the session may be present without the shared subscriptions: a clean stop left the group.
            if (!result.IsSessionPresent || _topics.SharesSubscriptions)
            {
                await SubscribeAsync(stoppingToken);
            }

            SetState(true, null);
            _metrics.BrokerConnect();
            Volatile.Read(ref _connected).TrySetResult();
            return true;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception ex)
        {
            SetState(false, $"cannot connect to {BrokerDescription}: {ex.GetBaseException().Message}");
            LogConnectFailed(BrokerDescription, ex.GetBaseException().Message);
            await _client.TryDisconnectAsync();
            return false;
        }
    }

    private async Task SubscribeAsync(CancellationToken cancellationToken)
    {
        var builder = new MqttClientSubscribeOptionsBuilder();
        foreach (var filter in _topics.SubscriptionFilters)
        {
            builder.WithTopicFilter(f => f.WithTopic(filter).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce));
        }

        var result = await _client.SubscribeAsync(builder.Build(), cancellationToken);
        foreach (var item in result.Items)
        {
            if (item.ResultCode > MqttClientSubscribeResultCode.GrantedQoS2)
            {
                throw new InvalidOperationException($"the broker refused the subscription to '{item.TopicFilter.Topic}': {item.ResultCode}");
            }

            LogSubscribed(item.TopicFilter.Topic, item.ResultCode);
        }
    }

    private async Task OnMessageReceivedAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        // Acked by the writer after the commit, in arrival order.
        e.AutoAcknowledge = false;
        var message = InboundMessage.From(e, Generation, _time.GetUtcNow(), _ingestOptions.MaxPayloadBytes, _topics);
        try
        {
            await _ingest.Writer.WriteAsync(message, _stopping.Token);
        }
        catch (OperationCanceledException)
        {
            // Stopping: left unacknowledged, so the broker delivers it again next time.
        }
    }

    private Task OnDisconnectedAsync(MqttClientDisconnectedEventArgs e)
    {
        if (e.ClientWasConnected)
        {
            var reason = e.Exception?.GetBaseException().Message ?? e.ReasonString ?? e.Reason.ToString();
            SetState(false, $"disconnected: {e.Reason} {reason}".Trim());
            _metrics.BrokerDisconnect();
            if (!_stopping.IsCancellationRequested)
            {
                LogDisconnected(e.Reason, reason);
            }

            Interlocked.Exchange(ref _connected, NewConnectedSignal());
            try
            {
                _wake.Release();
            }
            catch (SemaphoreFullException)
            {
                // Already woken.
            }
        }

        return Task.CompletedTask;
    }

    private MqttClientOptions BuildClientOptions()
    {
        var builder = new MqttClientOptionsBuilder()
            .WithClientId(_options.ClientId)
            .WithKeepAlivePeriod(TimeSpan.FromSeconds(_options.KeepAliveSeconds))
            .WithTimeout(TimeSpan.FromSeconds(_options.ConnectTimeoutSeconds));

        builder = _broker.Transport switch
        {
            BrokerTransport.Embedded => builder.WithTcpServer(_embedded.ClientHost, _options.Embedded.Port),
            BrokerTransport.WebSocket => builder.WithWebSocketServer(ws =>
                ws.WithUri(_broker.WebSocketUri)),
            _ => builder.WithTcpServer(_broker.Host, _broker.Port),
        };

        if (_broker.UseTls)
        {
            if (_options.Tls.DangerousAcceptAnyServerCertificate)
            {
                LogInsecureTls();
            }

            builder.WithTlsOptions(tls => BrokerTls.Configure(tls, _options.Tls, _broker.Host, LogCertificateRefused));
        }

        // On the embedded broker always the internal credentials: they are what reserves the gateway's client id.
        var (username, password) = _broker.IsEmbedded
            ? _embedded.InternalCredentials
            : (_broker.Username ?? _options.Username, _broker.Password ?? _options.Password);
        if (!string.IsNullOrEmpty(username))
        {
            builder.WithCredentials(username, password);
        }

        if (_options.UsesMqtt5)
        {
            builder.WithProtocolVersion(MqttProtocolVersion.V500)
                .WithCleanStart(false)
                .WithSessionExpiryInterval((uint)_options.SessionExpirySeconds)
                .WithReceiveMaximum((ushort)_options.ReceiveMaximum);
        }
        else
        {
            builder.WithProtocolVersion(MqttProtocolVersion.V311).WithCleanSession(false);
        }

        return builder.Build();
    }

    private TimeSpan ReconnectDelay(int failures) => Backoff.Jittered(
        TimeSpan.FromSeconds(_options.ReconnectMinDelaySeconds), TimeSpan.FromSeconds(_options.ReconnectMaxDelaySeconds), failures);

    private async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, _time, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void SetState(bool connected, string? error)
    {
        if (_state.Connected != connected || _state.LastError != error)
        {
            _state = new BrokerConnectionState(connected, _time.GetUtcNow(), error);
        }

        _metrics.BrokerConnected = connected;
    }

    private static TaskCompletionSource NewConnectedSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connecting to broker {Broker} as {ClientId} (MQTT {ProtocolVersion}, persistent session)")]
    private partial void LogStarting(string broker, string clientId, string protocolVersion);

    [LoggerMessage(Level = LogLevel.Information, Message = "Connected to broker {Broker}, session present: {SessionPresent}")]
    private partial void LogConnected(string broker, bool sessionPresent);

    [LoggerMessage(Level = LogLevel.Information, Message = "Subscribed to {TopicFilter}: {ResultCode}")]
    private partial void LogSubscribed(string topicFilter, MqttClientSubscribeResultCode resultCode);

    [LoggerMessage(Level = LogLevel.Error, Message = "Broker refused the connection: {ResultCode} {ReasonString}")]
    private partial void LogConnectRefused(MqttClientConnectResultCode resultCode, string? reasonString);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broker certificate refused: {Reason}")]
    private partial void LogCertificateRefused(string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot connect to broker {Broker}: {Reason}")]
    private partial void LogConnectFailed(string broker, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Reconnecting in {DelaySeconds:0.0} s (attempt {Attempt})")]
    private partial void LogReconnectScheduled(double delaySeconds, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Disconnected from broker: {Reason} {Detail}")]
    private partial void LogDisconnected(MqttClientDisconnectReason reason, string detail);

    [LoggerMessage(Level = LogLevel.Information, Message = "Disconnected from broker on shutdown; the persistent session keeps queueing")]
    private partial void LogDisconnectedOnStop();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mqtt:Tls:DangerousAcceptAnyServerCertificate is on: the broker's certificate is not checked. Development only.")]
    private partial void LogInsecureTls();

    [LoggerMessage(Level = LogLevel.Information, Message = "Left the shared subscription group {Group}: the other instances receive its share until this one returns")]
    private partial void LogLeftGroup(string group);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not leave the shared subscription group; the broker keeps this instance's share for it: {Reason}")]
    private partial void LogLeaveFailed(string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Acknowledgement not sent: {Reason}")]
    private partial void LogAckFailed(string reason);
}
