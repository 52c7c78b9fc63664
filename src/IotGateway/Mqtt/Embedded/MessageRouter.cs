using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Mqtt.Embedded;

// Decides which sessions a published message goes to, and with which QoS, subscription identifiers and retain flag
// (MQTT 5 section 3.3.4 and 4.8; the same rules MQTTnet applies), then queues it in each of them. MQTTnet's own
// routing is switched off (InterceptingPublish: ProcessPublish = false), so that every message passes through the
// sessions that persist it and honour expiry and flow control.
internal sealed class MessageRouter(SubscriptionIndex index, RetainedMessages retained, SessionJournal journal, TimeProvider time)
{
    // Returns how many sessions it reaches (0: the publisher is told "no matching subscribers").
    public async Task<int> PublishAsync(MqttApplicationMessage message, string senderClientId)
    {
        var now = time.GetUtcNow();
        message.UserProperties?.RemoveAll(p => p.Name == Delivery.Tag);
        if (message.Retain)
        {
            await retained.StoreAsync(message, now);
        }

        var matches = index.Match(message.Topic);
        if (matches.Count == 0)
        {
            return 0;
        }

        var properties = ForwardedProperties.From(message);
        var expiresAt = Delivery.ExpiryOf(message.MessageExpiryInterval, now);
        var reached = 0;
        foreach (var group in matches.GroupBy(m => m.Session))
        {
            var session = group.Key;
            // No Local: a client does not get its own messages back on such a subscription.
            var subscriptions = group.Select(m => m.Subscription)
                .Where(s => !(s.NoLocal && string.Equals(session.ClientId, senderClientId, StringComparison.Ordinal))).ToList();
            if (subscriptions.Count == 0)
            {
                continue;
            }

            reached++;
            session.Enqueue(new Delivery
            {
                Id = journal.NextDeliveryId(),
                Topic = message.Topic,
                Payload = message.Payload,
                Qos = Granted(message.QualityOfServiceLevel, subscriptions),
                // Retain As Published keeps the flag; otherwise a message sent as it is published carries none.
                Retain = message.Retain && subscriptions.Any(s => s.RetainAsPublished),
                ExpiresAt = expiresAt,
                SubscriptionIdentifiers = Identifiers(subscriptions),
                Properties = properties,
            }, now);
        }

        return reached;
    }

    // A retained message MQTTnet found for a new subscription: sent from the broker's own copy (its properties and
    // what remains of its expiry), retain flag set.
    public void SendRetained(BrokerSession session, string topic)
    {
        var now = time.GetUtcNow();
        if (retained.Find(topic) is not { } entry || entry.ExpiresAt <= now || session.Matching(topic) is not { Count: > 0 } subscriptions)
        {
            return;
        }

        session.Enqueue(new Delivery
        {
            Id = journal.NextDeliveryId(),
            Topic = topic,
            Payload = entry.Message.Payload,
            Qos = Granted(entry.Message.QualityOfServiceLevel, subscriptions),
            Retain = true,
            ExpiresAt = entry.ExpiresAt,
            SubscriptionIdentifiers = Identifiers(subscriptions),
            Properties = entry.Properties,
        }, now);
    }

    // The publisher's QoS, lowered to the highest a matching subscription granted.
    private static MqttQualityOfServiceLevel Granted(MqttQualityOfServiceLevel published, List<Subscription> subscriptions)
    {
        var subscribed = subscriptions.Max(s => s.Qos);
        return subscribed < published ? subscribed : published;
    }

    private static List<uint>? Identifiers(List<Subscription> subscriptions)
    {
        var identifiers = subscriptions.Where(s => s.Identifier > 0).Select(s => s.Identifier).Distinct().ToList();
        return identifiers.Count > 0 ? identifiers : null;
    }
}
