using MQTTnet;
using MQTTnet.Packets;
using MQTTnet.Protocol;

namespace IotGateway.Mqtt.Embedded;

internal sealed record Subscription(
    string TopicFilter,
    MqttQualityOfServiceLevel Qos,
    bool NoLocal,
    bool RetainAsPublished,
    MqttRetainHandling RetainHandling,
    uint Identifier)
{
    public static Subscription From(MqttTopicFilter filter, uint identifier) =>
        new(filter.Topic, filter.QualityOfServiceLevel, filter.NoLocal, filter.RetainAsPublished, filter.RetainHandling, identifier);

    public bool Matches(string topic) => MqttTopicFilterComparer.Compare(topic, TopicFilter) == MqttTopicFilterCompareResult.IsMatch;

    public StoredBrokerSubscription ToStored(string clientId) => new()
    {
        ClientId = clientId,
        TopicFilter = TopicFilter,
        Qos = (int)Qos,
        NoLocal = NoLocal,
        RetainAsPublished = RetainAsPublished,
        RetainHandling = (int)RetainHandling,
        Identifier = Identifier,
    };

    public static Subscription FromStored(StoredBrokerSubscription stored) =>
        new(stored.TopicFilter, (MqttQualityOfServiceLevel)stored.Qos, stored.NoLocal, stored.RetainAsPublished,
            (MqttRetainHandling)stored.RetainHandling, (uint)stored.Identifier);
}

// Which sessions a topic reaches. Filters without wildcards are looked up by topic (a device's own command topic:
// thousands of them); the few wildcard filters (the gateway's three, an observer's) are compared one by one.
internal sealed class SubscriptionIndex
{
    private readonly ReaderWriterLockSlim _lock = new();
    private readonly Dictionary<string, List<(BrokerSession Session, Subscription Subscription)>> _exact = new(StringComparer.Ordinal);
    private readonly List<(BrokerSession Session, Subscription Subscription)> _wildcards = [];

    public void Add(BrokerSession session, Subscription subscription)
    {
        _lock.EnterWriteLock();
        try
        {
            RemoveLocked(session, subscription.TopicFilter);
            if (HasWildcard(subscription.TopicFilter))
            {
                _wildcards.Add((session, subscription));
            }
            else
            {
                if (!_exact.TryGetValue(subscription.TopicFilter, out var list))
                {
                    _exact[subscription.TopicFilter] = list = [];
                }

                list.Add((session, subscription));
            }
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    public void Remove(BrokerSession session, string topicFilter)
    {
        _lock.EnterWriteLock();
        try
        {
            RemoveLocked(session, topicFilter);
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    public void RemoveAll(BrokerSession session, IEnumerable<string> topicFilters)
    {
        _lock.EnterWriteLock();
        try
        {
            foreach (var filter in topicFilters)
            {
                RemoveLocked(session, filter);
            }
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    // Every (session, subscription) whose filter matches the topic.
    public List<(BrokerSession Session, Subscription Subscription)> Match(string topic)
    {
        var matches = new List<(BrokerSession, Subscription)>();
        _lock.EnterReadLock();
        try
        {
            if (_exact.TryGetValue(topic, out var exact))
            {
                matches.AddRange(exact);
            }

            foreach (var entry in _wildcards)
            {
                if (entry.Subscription.Matches(topic))
                {
                    matches.Add(entry);
                }
            }
        }
        finally
        {
            _lock.ExitReadLock();
        }

        return matches;
    }

    private void RemoveLocked(BrokerSession session, string topicFilter)
    {
        if (HasWildcard(topicFilter))
        {
            _wildcards.RemoveAll(e => e.Session == session && e.Subscription.TopicFilter == topicFilter);
        }
        else if (_exact.TryGetValue(topicFilter, out var list))
        {
            list.RemoveAll(e => e.Session == session);
            if (list.Count == 0)
            {
                _exact.Remove(topicFilter);
            }
        }
    }

    private static bool HasWildcard(string topicFilter) => topicFilter.Contains('+', StringComparison.Ordinal) || topicFilter.Contains('#', StringComparison.Ordinal);
}
