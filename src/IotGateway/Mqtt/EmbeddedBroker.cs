using IotGateway.Observability;
using IotGateway.Protocol;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using IotGateway.Ingest;
using IotGateway.Mqtt.Embedded;
using MQTTnet.Formatter;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IotGateway.Mqtt;

// MQTTnet's in-process broker, run when Mqtt:Broker is "embedded" so a fresh clone works with nothing installed.
// MQTTnet handles the connections and the protocol's packet flows; the classes in Mqtt/Embedded keep the sessions
// (in the gateway's database, so they survive a restart), route and queue the messages (honouring message expiry
// and each client's Receive Maximum and Maximum Packet Size), publish the Last Wills (Will Delay, takeover) and keep
// the retained messages (in a file). They plug into MQTTnet through its events and its transport interface only.
public sealed partial class EmbeddedBroker : BackgroundService, IAsyncDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan RetainedSweep = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RestoreRetry = TimeSpan.FromSeconds(2);

    private readonly MqttOptions _options;
    private readonly DatabaseStartup _database;
    private readonly TimeProvider _time;
    private readonly ILogger<EmbeddedBroker> _logger;
    private readonly SessionJournal _journal = new();
    private readonly SessionStore _store;
    private readonly RetainedMessages _retained;
    private readonly SessionRestore _restore = new();
    private readonly MessageRouter _router;
    private readonly SessionRegistry _sessions;
    private readonly ClientLimits _limits;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _stopSync = new();
    private MqttServer? _server;
    private Task? _stopped;

    public EmbeddedBroker(IOptions<MqttOptions> options, DatabaseStartup database, IServiceScopeFactory scopes, DatabaseWriteGate writeGate,
        IOptions<IngestOptions> ingest, GatewayMetrics metrics, TimeProvider time, ILogger<EmbeddedBroker> logger)
    {
        _options = options.Value;
        _database = database;
        _time = time;
        _logger = logger;
        _store = new SessionStore(scopes, writeGate);
        _retained = new RetainedMessages(_options.Embedded.RetainedMessagesFile, logger);
        var index = new SubscriptionIndex();
        _router = new MessageRouter(index, _retained, _journal, time);
        _sessions = new SessionRegistry(index, _journal, _router, _restore, _options.Embedded.MaxPendingMessagesPerClient,
            metrics.EmbeddedBrokerMessageDropped, time, logger);
        _limits = new ClientLimits(ingest.Value.MaxPayloadBytes, _options.Embedded.MaxSubscriptionsPerClient, logger);
        BindAddress = IPAddress.TryParse(_options.Embedded.BindAddress, out var address) ? address : IPAddress.Loopback;
    }

    // The gateway's own client logs in with these when device credentials are required.
    public (string Username, string Password) InternalCredentials { get; } =
        ($"iot-gateway-internal-{Guid.NewGuid():N}", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));

    public bool Enabled => BrokerAddress.TryParse(_options.Broker, out var address, out _) && address.IsEmbedded;

    public int Port => _options.Embedded.Port;

    public IPAddress BindAddress { get; }

    // Where the gateway's own client reaches it: the bound address, or loopback when bound to every interface.
    public string ClientHost => BindAddress.Equals(IPAddress.Any) ? "127.0.0.1" : BindAddress.Equals(IPAddress.IPv6Any) ? "::1" : BindAddress.ToString();

    // The address devices connect to, as it is bound.
    public string ListenAddress => string.Create(CultureInfo.InvariantCulture,
        $"mqtt://{(BindAddress.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{BindAddress}]" : BindAddress.ToString())}:{Port}");

    // Completes once the stored sessions are restored and clients are accepted (at once when the broker is external).
    public Task Ready => Enabled ? _ready.Task : Task.CompletedTask;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return;
        }

        var builder = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointPort(Port)
            .WithPersistentSessions()
            // The sessions bound their queues themselves (MaxPendingMessagesPerClient); MQTTnet only ever holds a
            // client's in-flight window.
            .WithMaxPendingMessagesPerClient(int.MaxValue);
        builder = BindAddress.AddressFamily == AddressFamily.InterNetworkV6
            ? builder.WithDefaultEndpointBoundIPAddress(IPAddress.None).WithDefaultEndpointBoundIPV6Address(BindAddress)
            : builder.WithDefaultEndpointBoundIPAddress(BindAddress).WithDefaultEndpointBoundIPV6Address(IPAddress.None);

        var factory = new MqttServerFactory();
        var transports = factory.DefaultServerAdapters.Select(create => (IMqttServerAdapter)new ClientListener(create(factory), _options.ClientId))
            .Append(_restore).ToList();
        var server = factory.CreateMqttServer(builder.Build(), transports);
        Attach(server);
        try
        {
            await server.StartAsync();
        }
        catch (Exception ex)
        {
            server.Dispose();
            throw new InvalidOperationException(
                $"The embedded MQTT broker cannot listen on {ListenAddress} ({ex.GetBaseException().Message}). " +
                "Set Mqtt:Embedded:Port to a free port (Mqtt:Embedded:BindAddress to an address of this machine), or BROKER to an external broker such as mqtt://localhost:1883.", ex);
        }

        _server = server;
        _sessions.Server = server;
        _retained.Server = server;
        LogStarted(ListenAddress);
        if (!IPAddress.IsLoopback(BindAddress) && _options.Embedded.Users.Count == 0)
        {
            LogOpenToNetwork(ListenAddress);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await _database.Ready.WaitAsync(stoppingToken);
            await RestoreAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        _ready.TrySetResult();
        using var timer = new PeriodicTimer(Tick, _time);
        var lastSweep = _time.GetUtcNow();
        var lastWrite = lastSweep;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var now = _time.GetUtcNow();
                await Guarded(_sessions.RunDueAsync);
                if (now - lastSweep >= RetainedSweep)
                {
                    lastSweep = now;
                    await Guarded(() => _retained.RemoveExpiredAsync(now));
                }

                if (now - lastWrite >= TimeSpan.FromMilliseconds(_options.Embedded.PersistIntervalMilliseconds))
                {
                    lastWrite = now;
                    await WriteAsync(stoppingToken);
                    await _retained.SaveIfChangedAsync();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // A host can stop it twice (WebApplication.RunAsync and a test host both do): the second call, and disposal,
    // wait for the first stop to end. Disposing the server while it still closes its listeners corrupted
    // MQTTnet's listener list (InvalidOperationException: Collection was modified).
    public override Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is null)
        {
            return Task.CompletedTask;
        }

        lock (_stopSync)
        {
            return _stopped ??= StopServerAsync(_server, cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task? stopped;
        lock (_stopSync)
        {
            stopped = _stopped;
        }

        if (stopped is not null)
        {
            await stopped.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        try
        {
            _server?.Dispose();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            LogStopFailed(ex.Message);
        }

        Dispose();
    }

    private async Task StopServerAsync(MqttServer server, CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        _sessions.Stopping = true;
        try
        {
            await server.StopAsync(new MqttServerStopOptions());
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            // MQTTnet 5.2 can trip over its own client list while closing connections; the process is stopping anyway.
            LogStopFailed(ex.Message);
        }

        // Everything the last connections changed, before the process ends.
        if (_ready.Task.IsCompleted)
        {
            await _sessions.WaitForDisconnectsAsync(TimeSpan.FromSeconds(2));
            await WriteAsync(CancellationToken.None);
        }

        await _retained.SaveIfChangedAsync();
    }

    private async Task RestoreAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var stored = await _store.LoadAsync(cancellationToken);
                var (sessions, messages) = await _sessions.RestoreAsync(stored, cancellationToken);
                LogRestored(sessions, messages);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogRestoreFailed(attempt, ex.GetBaseException().Message);
                await Task.Delay(RestoreRetry, _time, cancellationToken);
            }
        }
    }

    private async Task WriteAsync(CancellationToken cancellationToken)
    {
        if (_journal.IsEmpty)
        {
            return;
        }

        var changes = _journal.Take();
        try
        {
            await _store.WriteAsync(changes, _sessions.Snapshot,
                (clientId, reason) => LogSessionRefused(LogText.Printable(clientId, 128), LogText.Printable(reason, 512)), cancellationToken);
        }
        catch (SessionWriteException ex)
        {
            // Kept for the next attempt; a crash meanwhile loses them (README: what a crash can lose).
            _journal.PutBack(ex.Unwritten);
            if (ex.InnerException is not OperationCanceledException)
            {
                LogWriteFailed(ex.GetBaseException().Message);
            }
        }
    }

    private async Task Guarded(Func<Task> work)
    {
        try
        {
            await work();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogMaintenanceFailed(ex.GetBaseException().Message);
        }
    }

    private void Attach(MqttServer server)
    {
        server.ValidatingConnectionAsync += ValidateConnectionAsync;
        server.LoadingRetainedMessageAsync += e =>
        {
            e.LoadedRetainedMessages = _retained.Load(_time.GetUtcNow());
            return Task.CompletedTask;
        };
        server.ClientConnectedAsync += e => _sessions.OnConnectedAsync(e.RemoteEndPoint);
        server.ClientDisconnectedAsync += e => _sessions.OnDisconnectedAsync(e.RemoteEndPoint, e.DisconnectType, e.ReasonCode);
        server.ClientSubscribedTopicAsync += e =>
        {
            _sessions.OnSubscribed(e.ClientId, e.TopicFilter);
            return Task.CompletedTask;
        };
        server.InterceptingSubscriptionAsync += e =>
        {
            // The subscriptions restored at start were accepted when they were made; the gateway's own client is
            // not bound by the device limits.
            if (_sessions.Accepting && e.ClientId != _options.ClientId)
            {
                _limits.CheckSubscription(e, _sessions.Find(e.ClientId));
            }

            return Task.CompletedTask;
        };
        server.ClientUnsubscribedTopicAsync += e =>
        {
            _sessions.OnUnsubscribed(e.ClientId, e.TopicFilter);
            return Task.CompletedTask;
        };
        server.InterceptingPublishAsync += RouteAsync;
        // MQTTnet's own routing is off, so what reaches this is a retained message for a new subscription.
        server.InterceptingClientEnqueueAsync += e =>
        {
            e.AcceptEnqueue = false;
            if (_sessions.Find(e.ReceiverClientId) is { } session)
            {
                _router.SendRetained(session, e.ApplicationMessage.Topic);
            }

            return Task.CompletedTask;
        };
        // The inbound interceptor runs on the client's receive loop just before MQTTnet handles the same packet.
        server.InterceptingInboundPacketAsync += e =>
        {
            switch (e.Packet)
            {
                case MqttSubscribePacket subscribe:
                    _sessions.OnSubscribePacket(e.ClientId, subscribe.SubscriptionIdentifier);
                    break;
                case MqttPublishPacket { QualityOfServiceLevel: MqttQualityOfServiceLevel.ExactlyOnce } publish
                    when _sessions.Find(e.ClientId) is { Connection: { } connection } session:
                    connection.RoutingResentQos2 = session.IsResentQos2(publish);
                    break;
                case MqttPubRelPacket release:
                    _sessions.Find(e.ClientId)?.Released(release.PacketIdentifier);
                    break;
            }

            return Task.CompletedTask;
        };
        server.InterceptingOutboundPacketAsync += e =>
        {
            if (e.Packet is MqttPublishPacket publish && _sessions.Find(e.ClientId) is { } session
                && !session.OnSending(publish, _time.GetUtcNow()))
            {
                e.ProcessPacket = false;
                session.Connection?.Channel.Acknowledge(publish);
            }
            else if (e.Packet is MqttConnAckPacket { IsSessionPresent: false, ReasonCode: MqttConnectReasonCode.Success } && _sessions.Accepting)
            {
                _sessions.Find(e.ClientId)?.TakeBackHandedOver();
            }

            return Task.CompletedTask;
        };
        server.ClientAcknowledgedPublishPacketAsync += e =>
        {
            _sessions.Find(e.ClientId)?.Acknowledge(e.PublishPacket, _time.GetUtcNow());
            return Task.CompletedTask;
        };
    }

    private async Task RouteAsync(InterceptingPublishEventArgs e)
    {
        e.ProcessPublish = false;
        if (_sessions.Find(e.ClientId)?.Connection is { RoutingResentQos2: true } sender)
        {
            sender.RoutingResentQos2 = false;
            e.Response.ReasonCode = MqttPubAckReasonCode.Success; // routed the first time
            return;
        }

        if (!_limits.MayPublish(e))
        {
            return;
        }

        try
        {
            var reached = await _router.PublishAsync(e.ApplicationMessage, e.ClientId);
            e.Response.ReasonCode = reached > 0 ? MqttPubAckReasonCode.Success : MqttPubAckReasonCode.NoMatchingSubscribers;
        }
        catch (Exception ex)
        {
            LogRouteFailed(LogText.Printable(e.ClientId, 128), ex.GetBaseException().Message);
            e.Response.ReasonCode = MqttPubAckReasonCode.UnspecifiedError;
        }
    }

    private async Task ValidateConnectionAsync(ValidatingConnectionEventArgs e)
    {
        if (e.ChannelAdapter is not ClientChannel { Connection: { } connection })
        {
            // The broker's own connections that open stored sessions again (SessionRestore).
            return;
        }

        if (!_sessions.Accepting)
        {
            e.ReasonCode = MqttConnectReasonCode.ServerUnavailable;
            e.ReasonString = "restoring sessions";
            return;
        }

        // The gateway's own client id is reserved: a device connecting with it would take over the gateway's session
        // (a clean start would end it and drop what it holds for the gateway).
        if (connection.ClientId == _options.ClientId && !IsInternal(e.UserName, e.Password))
        {
            e.ReasonCode = MqttConnectReasonCode.ClientIdentifierNotValid;
            e.ReasonString = "this client id is the gateway's own";
            LogReservedClientId(LogText.Printable(e.ClientId, 128));
            return;
        }

        if (_options.Embedded.Users.Count > 0 && !IsKnownUser(e.UserName, e.Password))
        {
            e.ReasonCode = MqttConnectReasonCode.BadUserNameOrPassword;
            LogRefused(LogText.Printable(e.ClientId, 128), e.UserName is null ? "(none)" : LogText.Printable(e.UserName, 128));
            return;
        }

        if (!_limits.MayConnect(e, connection))
        {
            return;
        }

        // MQTT 5: a client without an id gets one, named in the CONNACK [MQTT-3.2.2-16].
        if (string.IsNullOrEmpty(connection.ClientId) && e.ProtocolVersion == MqttProtocolVersion.V500)
        {
            connection.ClientId = SessionRegistry.NewClientId();
            e.AssignedClientIdentifier = connection.ClientId;
        }

        await _sessions.AcceptAsync(connection);
    }

    private bool IsInternal(string? username, string? password) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes($"{username}\n{password}")),
            SHA256.HashData(Encoding.UTF8.GetBytes($"{InternalCredentials.Username}\n{InternalCredentials.Password}")));

    private bool IsKnownUser(string? username, string? password)
    {
        var presented = Encoding.UTF8.GetBytes($"{username}\n{password}");
        var known = _options.Embedded.Users.Select(u => $"{u.Username}\n{u.Password}").Append($"{InternalCredentials.Username}\n{InternalCredentials.Password}");
        var match = false;
        foreach (var candidate in known)
        {
            // Every candidate, in constant time per comparison of equal-length hashes.
            match |= CryptographicOperations.FixedTimeEquals(SHA256.HashData(presented), SHA256.HashData(Encoding.UTF8.GetBytes(candidate)));
        }

        return match;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded MQTT broker listening on {Address} (sessions kept in the database; retained messages saved to disk)")]
    private partial void LogStarted(string address);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The embedded MQTT broker listens on {Address}, beyond this machine, and accepts any device without credentials: " +
        "whoever reaches the address can read and send every message. Set Mqtt:Embedded:Users, or Mqtt:Embedded:BindAddress to 127.0.0.1.")]
    private partial void LogOpenToNetwork(string address);

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded broker restored {Sessions} sessions with {Messages} queued messages from the database")]
    private partial void LogRestored(int sessions, int messages);

    [LoggerMessage(Level = LogLevel.Error, Message = "Embedded broker cannot restore its sessions (attempt {Attempt}); devices are refused until it can: {Reason}")]
    private partial void LogRestoreFailed(int attempt, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Embedded broker cannot save its sessions; it keeps them and tries again: {Reason}")]
    private partial void LogWriteFailed(string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Embedded broker cannot save the session of {ClientId}, the database refuses it; " +
        "the other sessions are saved, this one is kept in memory only until the database takes it: {Reason}")]
    private partial void LogSessionRefused(string clientId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Embedded broker maintenance failed: {Reason}")]
    private partial void LogMaintenanceFailed(string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Embedded broker could not route a message from {ClientId}: {Reason}")]
    private partial void LogRouteFailed(string clientId, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker refused client {ClientId}: that client id is the gateway's own")]
    private partial void LogReservedClientId(string clientId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker refused client {ClientId}: bad username or password for user {Username}")]
    private partial void LogRefused(string clientId, string username);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker did not stop cleanly: {Reason}")]
    private partial void LogStopFailed(string reason);
}
