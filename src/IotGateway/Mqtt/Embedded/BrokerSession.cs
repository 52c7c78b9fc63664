using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace IotGateway.Mqtt.Embedded;

// One client's session as the broker keeps it: its subscriptions and the messages waiting for it. MQTTnet is handed
// a message only when the client is connected and may take it: within its Receive Maximum, not expired, not larger
// than its Maximum Packet Size. So MQTTnet holds at most the client's in-flight window, and the rest stays here,
// where it is persisted (SessionJournal) and counted down.
internal sealed class BrokerSession(string clientId, SessionJournal journal, int maxQueued, Action dropped)
{
    private readonly LinkedList<Delivery> _waiting = new();
    private readonly Dictionary<long, Delivery> _handedOver = [];
    private readonly Dictionary<MqttPublishPacket, Delivery> _sent = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<MqttPublishPacket> _retired = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<ushort> _awaitingRelease = [];
    private readonly Dictionary<string, Subscription> _subscriptions = new(StringComparer.Ordinal);

    // Guards everything below; lifecycle changes (SessionRegistry) also hold its lifecycle gate.
    public Lock Sync { get; } = new();

    public string ClientId { get; } = clientId;

    // The live connection; null while the client is away.
    public ClientConnection? Connection { get; set; }
    public uint ExpirySeconds { get; set; }
    public DateTimeOffset? DisconnectedAt { get; set; }
    public string? Username { get; set; }
    public ushort KeepAliveSeconds { get; set; }

    // The Last Will that is armed (client connected) or pending (its delay running); null when none.
    public WillMessage? Will { get; set; }

    // Bumped whenever the Will or the expiry is rescheduled: a timer carrying an older version is stale.
    public long WillVersion { get; set; }
    public long ExpiryVersion { get; set; }

    // Set once the session is gone (expired, ended, replaced by a clean start): late deliveries are dropped.
    public bool Ended { get; private set; }

    // Kept in the database: its state outlives the connection.
    public bool Durable => (Connection?.SessionExpirySeconds ?? ExpirySeconds) > 0;

    public IReadOnlyCollection<Subscription> Subscriptions
    {
        get
        {
            lock (Sync)
            {
                return [.. _subscriptions.Values];
            }
        }
    }

    // Returns whether the session took it: QoS 0 is not kept for a client that is away (as Mosquitto does).
    public bool Enqueue(Delivery delivery, DateTimeOffset now)
    {
        lock (Sync)
        {
            if (Ended || (delivery.Qos == MqttQualityOfServiceLevel.AtMostOnce && Connection is null))
            {
                return false;
            }

            if (_waiting.Count + _handedOver.Count >= maxQueued)
            {
                // The oldest waiting message makes room (MaxPendingMessagesPerClient); with none waiting, the new one is dropped.
                dropped();
                if (_waiting.First is not { } oldest)
                {
                    return false;
                }

                _waiting.RemoveFirst();
                Forget(oldest.Value);
            }

            _waiting.AddLast(delivery);
            if (delivery.Qos > MqttQualityOfServiceLevel.AtMostOnce && Durable)
            {
                delivery.Journaled = true;
                journal.Added(ClientId, delivery);
            }

            FeedLocked(now);
            return true;
        }
    }

    public void Restore(IEnumerable<Subscription> subscriptions, IEnumerable<Delivery> deliveries)
    {
        lock (Sync)
        {
            foreach (var subscription in subscriptions)
            {
                _subscriptions[subscription.TopicFilter] = subscription;
            }

            foreach (var delivery in deliveries)
            {
                delivery.Journaled = true;
                _waiting.AddLast(delivery);
            }
        }
    }

    // The client is connected (CONNACK sent): MQTTnet's session can take messages.
    public void Start(ClientConnection connection, MQTTnet.Server.MqttSessionStatus session, DateTimeOffset now)
    {
        lock (Sync)
        {
            if (Connection != connection || Ended)
            {
                return;
            }

            connection.Session = session;
            foreach (var delivery in _handedOver.Values)
            {
                delivery.InFlight = true; // MQTTnet sends them again on the resumed session
            }

            FeedLocked(now);
        }
    }

    // MQTTnet started a new session (CONNACK without session present): whatever it held of ours is gone from it,
    // so those messages wait again, first in line.
    public void TakeBackHandedOver()
    {
        lock (Sync)
        {
            foreach (var delivery in _handedOver.Values.OrderByDescending(d => d.Id))
            {
                delivery.InFlight = false;
                _waiting.AddFirst(delivery);
            }

            _handedOver.Clear();
            _sent.Clear();
            _retired.Clear();
        }
    }

    // The client went away (unless a newer connection has taken the session over): messages handed to MQTTnet stay
    // there (it sends them again on a resumed session); QoS 0 messages still waiting are dropped.
    public bool Detach(ClientConnection connection, DateTimeOffset now, uint expirySeconds)
    {
        lock (Sync)
        {
            if (Connection != connection)
            {
                return false;
            }

            Connection = null;
            DisconnectedAt = now;
            ExpirySeconds = expirySeconds;
            foreach (var delivery in _handedOver.Values)
            {
                delivery.InFlight = false; // at rest until the client is back: worth a write
            }

            for (var node = _waiting.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Qos == MqttQualityOfServiceLevel.AtMostOnce)
                {
                    _waiting.Remove(node);
                }

                node = next;
            }

            return true;
        }
    }

    // MQTTnet is about to send this packet (outbound interceptor): tie it to its delivery (taking the tag out), mark
    // a second sending of it as a duplicate [MQTT-3.3.1-1], and give it what remains of its expiry. Returns false when
    // it must not be sent: its expiry ran out while MQTTnet held it (a client that left with it in flight and came
    // back late). The caller then retires MQTTnet's copy (ClientChannel.Acknowledge).
    public bool OnSending(MqttPublishPacket packet, DateTimeOffset now)
    {
        lock (Sync)
        {
            if (_retired.Contains(packet))
            {
                return false;
            }

            if (_sent.TryGetValue(packet, out var delivery))
            {
                packet.Dup = true;
                Delivery.TakeTag(packet);
            }
            else if (Delivery.TakeTag(packet) is { } id && _handedOver.TryGetValue(id, out delivery))
            {
                _sent[packet] = delivery;
            }
            else
            {
                return true;
            }

            if (delivery.HasExpired(now))
            {
                _sent.Remove(packet);
                _handedOver.Remove(delivery.Id);
                _retired.Add(packet);
                Forget(delivery);
                FeedLocked(now);
                return false;
            }

            packet.MessageExpiryInterval = delivery.RemainingExpiryInterval(now);
            return true;
        }
    }

    // PUBACK or PUBCOMP: the message is delivered, which frees a place in the client's window.
    public void Acknowledge(MqttPublishPacket packet, DateTimeOffset now)
    {
        lock (Sync)
        {
            if (_retired.Remove(packet))
            {
                return; // the acknowledgement the broker made up for a message it did not send
            }

            if (!_sent.Remove(packet, out var delivery))
            {
                // Acknowledged before it was seen leaving (only a client guessing packet ids can do that).
                if (Delivery.TakeTag(packet) is not { } id || !_handedOver.TryGetValue(id, out delivery))
                {
                    return;
                }
            }

            _handedOver.Remove(delivery.Id);
            Forget(delivery);
            FeedLocked(now);
        }
    }

    // QoS 2 from the client: a PUBLISH whose packet id already awaits its PUBREL is the client sending it again
    // (after a reconnect, with DUP): acknowledged, not routed a second time [MQTT-4.3.3-10]. MQTTnet would route it.
    public bool IsResentQos2(MqttPublishPacket packet)
    {
        lock (Sync)
        {
            return !_awaitingRelease.Add(packet.PacketIdentifier);
        }
    }

    public void Released(ushort packetIdentifier)
    {
        lock (Sync)
        {
            _awaitingRelease.Remove(packetIdentifier);
        }
    }

    public void Subscribe(Subscription subscription)
    {
        lock (Sync)
        {
            _subscriptions[subscription.TopicFilter] = subscription;
        }
    }

    public bool IsSubscribed(string topicFilter, out int subscriptions)
    {
        lock (Sync)
        {
            subscriptions = _subscriptions.Count;
            return _subscriptions.ContainsKey(topicFilter);
        }
    }

    public bool Unsubscribe(string topicFilter)
    {
        lock (Sync)
        {
            return _subscriptions.Remove(topicFilter);
        }
    }

    // The subscriptions that match a topic, for a retained message sent on subscribe.
    public List<Subscription> Matching(string topic)
    {
        lock (Sync)
        {
            return _subscriptions.Values.Where(s => s.Matches(topic)).ToList();
        }
    }

    // The session is over: nothing more is queued or persisted for it. Returns its topic filters.
    public List<string> End()
    {
        lock (Sync)
        {
            Ended = true;
            Connection = null;
            _waiting.Clear();
            _handedOver.Clear();
            _sent.Clear();
            _retired.Clear();
            var filters = _subscriptions.Keys.ToList();
            _subscriptions.Clear();
            return filters;
        }
    }

    // What the database keeps of it; null when it is not to be kept.
    public (StoredBrokerSession Session, List<StoredBrokerSubscription> Subscriptions)? Snapshot()
    {
        lock (Sync)
        {
            if (Ended || !Durable)
            {
                return null;
            }

            var session = new StoredBrokerSession
            {
                ClientId = ClientId,
                ExpirySeconds = Connection?.SessionExpirySeconds ?? ExpirySeconds,
                DisconnectedAt = Connection is null ? DisconnectedAt : null,
                Username = Username,
                KeepAliveSeconds = KeepAliveSeconds,
                Will = Will?.ToJson(),
            };
            return (session, _subscriptions.Values.Select(s => s.ToStored(ClientId)).ToList());
        }
    }

    private void FeedLocked(DateTimeOffset now)
    {
        if (Connection is not { Session: { } session } connection)
        {
            return;
        }

        while (_waiting.First is { } first)
        {
            var delivery = first.Value;
            if (delivery.Qos > MqttQualityOfServiceLevel.AtMostOnce && _handedOver.Count >= connection.ReceiveMaximum)
            {
                return;
            }

            _waiting.RemoveFirst();
            if (delivery.HasExpired(now))
            {
                Forget(delivery);
                continue;
            }

            var message = delivery.ToApplicationMessage(now, tagged: delivery.Qos > MqttQualityOfServiceLevel.AtMostOnce);
            // Too large for the client: dropped as if it had been sent [MQTT-3.1.2-25].
            if (!connection.Fits(message) || !session.TryEnqueueApplicationMessage(message, out _))
            {
                Forget(delivery);
                continue;
            }

            if (delivery.Qos > MqttQualityOfServiceLevel.AtMostOnce)
            {
                delivery.InFlight = true;
                _handedOver[delivery.Id] = delivery;
            }
        }
    }

    private void Forget(Delivery delivery)
    {
        if (delivery.Journaled)
        {
            journal.Removed(delivery);
        }
    }
}
