using System.Collections.Concurrent;
using System.Net;
using IotGateway.Observability;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IotGateway.Mqtt.Embedded;

// The sessions' lifecycle as MQTT 5 and 3.1.1 describe it, where MQTTnet falls short: a connection starts, resumes
// or ends a session; a Last Will goes out when the connection is lost, after its Will Delay Interval, on a session
// takeover or when the session ends, and not when the client is back in time; a session expires by the interval of
// its last connection, which the DISCONNECT may change. One change at a time (the lifecycle gate), so that a client
// reconnecting and its session expiring cannot interleave.
internal sealed partial class SessionRegistry(
    SubscriptionIndex index,
    SessionJournal journal,
    MessageRouter router,
    SessionRestore restore,
    int maxQueuedPerClient,
    Action queueDropped,
    TimeProvider time,
    ILogger logger)
{
    private readonly ConcurrentDictionary<string, BrokerSession> _sessions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<EndPoint, ClientConnection> _connections = new();
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private readonly DueQueue _wills = new();
    private readonly DueQueue _expiries = new();

    public MqttServer? Server { get; set; }

    // False until the stored sessions are restored: clients are refused meanwhile (server unavailable).
    public bool Accepting { get; private set; }

    // Set while the gateway stops: the connections MQTTnet closes then are not the clients' failures (see OnDisconnectedAsync).
    public bool Stopping { get; set; }

    // Once MQTTnet has stopped, its connections' last events still run: the final write waits for them (a while).
    public async Task WaitForDisconnectsAsync(TimeSpan timeout)
    {
        var deadline = time.GetUtcNow() + timeout;
        while (!_connections.IsEmpty && time.GetUtcNow() < deadline)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20), time);
        }
    }

    public static string NewClientId() => $"auto-{Guid.NewGuid():N}";

    public BrokerSession? Find(string clientId) => _sessions.TryGetValue(clientId, out var session) ? session : null;

    public (StoredBrokerSession Session, List<StoredBrokerSubscription> Subscriptions)? Snapshot(string clientId) => Find(clientId)?.Snapshot();

    // At start: the sessions the database kept, opened again in MQTTnet. A session whose expiry ran out while the
    // gateway was down ends now, with its Will. A Will that was armed or pending when the gateway stopped goes out
    // only if the client has not come back within 1.5 keep-alive periods (or its Will Delay, if longer): the stop was
    // the gateway's, not the client's, and a client that is alive reconnects within that time.
    public async Task<(int Sessions, int Messages)> RestoreAsync(StoredSessions stored, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        journal.ContinueAfter(stored.LastMessageId);
        var ended = new List<(WillMessage Will, string ClientId)>();
        var restored = new List<BrokerSession>();
        var messages = 0;
        foreach (var row in stored.Sessions)
        {
            var will = WillMessage.FromJson(row.Will);
            var disconnectedAt = row.DisconnectedAt ?? now;
            var expiry = (uint)Math.Clamp(row.ExpirySeconds, 0, uint.MaxValue);
            if (expiry != ClientConnection.NeverExpires && disconnectedAt.AddSeconds(expiry) <= now)
            {
                if (will is not null)
                {
                    ended.Add((will, row.ClientId));
                }

                journal.Cleared(row.ClientId);
                continue;
            }

            var session = new BrokerSession(row.ClientId, journal, maxQueuedPerClient, queueDropped)
            {
                ExpirySeconds = expiry,
                DisconnectedAt = disconnectedAt,
                Username = row.Username,
                KeepAliveSeconds = (ushort)Math.Clamp(row.KeepAliveSeconds, 0, ushort.MaxValue),
                Will = will,
            };
            var subscriptions = stored.Subscriptions[row.ClientId].Select(Subscription.FromStored).ToList();
            var deliveries = stored.Messages[row.ClientId].Select(Delivery.FromStored).ToList();
            foreach (var expired in deliveries.Where(d => d.HasExpired(now)))
            {
                journal.Removed(expired);
            }

            session.Restore(subscriptions, deliveries.Where(d => !d.HasExpired(now)));
            _sessions[row.ClientId] = session;
            foreach (var subscription in subscriptions)
            {
                index.Add(session, subscription);
            }

            if (expiry != ClientConnection.NeverExpires)
            {
                _expiries.Add(row.ClientId, session.ExpiryVersion, disconnectedAt.AddSeconds(expiry));
            }

            if (will is not null)
            {
                var grace = Math.Max(will.DelaySeconds, session.KeepAliveSeconds * 1.5);
                _wills.Add(row.ClientId, session.WillVersion, now.AddSeconds(grace));
            }

            restored.Add(session);
            messages += deliveries.Count;
        }

        await Parallel.ForEachAsync(restored, new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, async (session, token) =>
        {
            try
            {
                await restore.RestoreAsync(session.ClientId, session.Username, session.Subscriptions, token);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
            {
                // The broker still routes to it and keeps its messages; only the client's next CONNACK says
                // "no session", and the client subscribes again.
                LogRestoreFailed(LogText.Printable(session.ClientId, 128), ex.GetBaseException().Message);
            }
        });
        Accepting = true;
        foreach (var (will, clientId) in ended)
        {
            await router.PublishAsync(will.ToApplicationMessage(), clientId);
        }

        return (restored.Count, messages);
    }

    // A CONNECT that passed authentication. Clean start ends the old session (and sends its pending Will); otherwise
    // the session resumes and a pending Will is called off [MQTT-3.1.3-9].
    public async Task AcceptAsync(ClientConnection connection)
    {
        var wills = new List<WillMessage>();
        var clientId = connection.ClientId;
        await _lifecycle.WaitAsync();
        try
        {
            _connections[connection.Endpoint] = connection;
            var session = Find(clientId);
            if (session is not null)
            {
                lock (session.Sync)
                {
                    // Session takeover [MQTT-3.1.4-3], or a client back while its Will waits out the delay: a new
                    // connection that carries on the session calls the Will off [MQTT-3.1.2-8]; one that starts
                    // clean ends the session, and the Will goes out (as Mosquitto does in both cases).
                    if (connection.CleanStart && session.Will is { } will)
                    {
                        wills.Add(will);
                    }
                }

                if (connection.CleanStart)
                {
                    End(session);
                    session = null;
                }
            }

            session ??= _sessions.GetOrAdd(clientId, id => new BrokerSession(id, journal, maxQueuedPerClient, queueDropped));
            lock (session.Sync)
            {
                session.Connection = connection;
                session.DisconnectedAt = null;
                session.ExpirySeconds = connection.SessionExpirySeconds;
                session.Username = connection.Username;
                session.KeepAliveSeconds = connection.KeepAliveSeconds;
                session.Will = connection.Will;
                session.WillVersion++;
                session.ExpiryVersion++;
            }

            journal.Changed(clientId);
        }
        finally
        {
            _lifecycle.Release();
        }

        foreach (var will in wills)
        {
            await PublishWillAsync(will, clientId);
        }
    }

    // CONNACK is out: MQTTnet's session can take the waiting messages.
    public async Task OnConnectedAsync(EndPoint endpoint)
    {
        if (!_connections.TryGetValue(endpoint, out var connection) || Server is not { } server)
        {
            return;
        }

        try
        {
            var session = await server.GetSessionAsync(connection.ClientId);
            Find(connection.ClientId)?.Start(connection, session, time.GetUtcNow());
        }
        catch (InvalidOperationException)
        {
            // Gone again already.
        }
    }

    // The connection ended. Its Will: dropped after a normal DISCONNECT; otherwise sent now or after its delay
    // (bounded by the session's expiry) [MQTT-3.1.2-8, 3.1.3-9]. The session: ended when its expiry is 0, else
    // kept until the expiry runs out.
    public async Task OnDisconnectedAsync(EndPoint? endpoint, MqttClientDisconnectType type, MqttDisconnectReasonCode? reason)
    {
        if (endpoint is null || !_connections.TryRemove(endpoint, out var connection))
        {
            return;
        }

        WillMessage? sendNow = null;
        var clientId = connection.ClientId;
        await _lifecycle.WaitAsync();
        try
        {
            var now = time.GetUtcNow();
            // A gateway that stops keeps the session as the CONNECT asked (see RestoreAsync for the Will).
            var expiry = Stopping ? connection.SessionExpirySeconds : connection.SessionExpiryAtEnd;
            if (Find(clientId) is not { } session || !session.Detach(connection, now, expiry))
            {
                return; // taken over: AcceptAsync dealt with it
            }

            lock (session.Sync)
            {
                // A gateway that stops leaves a lasting session's Will armed (see RestoreAsync).
                if (session.Will is { } will && !(Stopping && expiry > 0))
                {
                    if (type == MqttClientDisconnectType.Clean && reason != MqttDisconnectReasonCode.DisconnectWithWillMessage)
                    {
                        session.Will = null;
                        session.WillVersion++;
                    }
                    else if (expiry == 0 || will.DelaySeconds == 0 || Stopping)
                    {
                        sendNow = will;
                        session.Will = null;
                        session.WillVersion++;
                    }
                    else
                    {
                        _wills.Add(clientId, session.WillVersion, now.AddSeconds(Math.Min(will.DelaySeconds, expiry)));
                    }
                }
            }

            if (expiry == 0)
            {
                await DeleteAsync(session);
            }
            else
            {
                journal.Changed(clientId);
                if (expiry != ClientConnection.NeverExpires)
                {
                    _expiries.Add(clientId, session.ExpiryVersion, now.AddSeconds(expiry));
                }
            }
        }
        finally
        {
            _lifecycle.Release();
        }

        if (sendNow is not null)
        {
            await PublishWillAsync(sendNow, clientId);
        }
    }

    // Wills whose delay ran out, sessions whose expiry did (with their pending Will: the session ends).
    public async Task RunDueAsync()
    {
        var now = time.GetUtcNow();
        foreach (var (clientId, version) in _wills.TakeDue(now))
        {
            WillMessage? will = null;
            await _lifecycle.WaitAsync();
            try
            {
                if (Find(clientId) is { } session)
                {
                    lock (session.Sync)
                    {
                        if (session.Connection is null && session.WillVersion == version)
                        {
                            will = session.Will;
                            session.Will = null;
                            session.WillVersion++;
                        }
                    }

                    journal.Changed(clientId);
                }
            }
            finally
            {
                _lifecycle.Release();
            }

            if (will is not null)
            {
                await PublishWillAsync(will, clientId);
            }
        }

        foreach (var (clientId, version) in _expiries.TakeDue(now))
        {
            WillMessage? will = null;
            await _lifecycle.WaitAsync();
            try
            {
                if (Find(clientId) is { } session && session.Connection is null && session.ExpiryVersion == version)
                {
                    lock (session.Sync)
                    {
                        will = session.Will;
                    }

                    await DeleteAsync(session);
                    LogSessionExpired(LogText.Printable(clientId, 128));
                }
            }
            finally
            {
                _lifecycle.Release();
            }

            if (will is not null)
            {
                await PublishWillAsync(will, clientId);
            }
        }
    }

    public void OnSubscribePacket(string clientId, uint subscriptionIdentifier)
    {
        if (Find(clientId)?.Connection is { } connection)
        {
            connection.SubscriptionIdentifier = subscriptionIdentifier;
            connection.NewFiltersInPacket.Clear();
        }
    }

    public void OnSubscribed(string clientId, MqttTopicFilter filter)
    {
        if (!Accepting || Find(clientId) is not { } session)
        {
            return; // restored subscriptions are already known
        }

        var subscription = Subscription.From(filter, session.Connection?.SubscriptionIdentifier ?? 0);
        session.Subscribe(subscription);
        index.Add(session, subscription);
        if (session.Ended)
        {
            index.Remove(session, filter.Topic);
        }

        journal.Changed(clientId);
    }

    public void OnUnsubscribed(string clientId, string topicFilter)
    {
        if (Accepting && Find(clientId) is { } session && session.Unsubscribe(topicFilter))
        {
            index.Remove(session, topicFilter);
            journal.Changed(clientId);
        }
    }

    private void End(BrokerSession session)
    {
        index.RemoveAll(session, session.End());
        _sessions.TryRemove(new KeyValuePair<string, BrokerSession>(session.ClientId, session));
        journal.Cleared(session.ClientId);
    }

    // Ours and MQTTnet's (which would otherwise keep it: it was told the session never expires).
    private async Task DeleteAsync(BrokerSession session)
    {
        End(session);
        try
        {
            if (Server is { IsStarted: true } server)
            {
                await (await server.GetSessionAsync(session.ClientId)).DeleteAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // MQTTnet had already ended it (a clean session).
        }
    }

    private async Task PublishWillAsync(WillMessage will, string clientId)
    {
        LogWillPublished(LogText.Printable(clientId, 128), LogText.Printable(will.Topic, 256));
        await router.PublishAsync(will.ToApplicationMessage(), clientId);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker could not open the session of {ClientId} again in MQTTnet: {Reason}")]
    private partial void LogRestoreFailed(string clientId, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Embedded broker published the Last Will of {ClientId} on {Topic}")]
    private partial void LogWillPublished(string clientId, string topic);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Embedded broker ended the session of {ClientId}: its expiry ran out")]
    private partial void LogSessionExpired(string clientId);
}
