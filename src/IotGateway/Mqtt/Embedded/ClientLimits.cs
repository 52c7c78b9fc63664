using IotGateway.Observability;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IotGateway.Mqtt.Embedded;

// What the broker refuses a client, with a reason code the client can read and a log line for the operator: text
// the database cannot keep (StorableText), a payload larger than the gateway takes (Ingest:MaxPayloadBytes: refused
// before it is queued and saved for every subscriber), more subscriptions than a client may hold.
internal sealed partial class ClientLimits(int maxPayloadBytes, int maxSubscriptions, ILogger logger)
{
    // A CONNECT whose client id, username or Will topic the database could not keep. Returns whether it may go on.
    public bool MayConnect(ValidatingConnectionEventArgs e, ClientConnection connection)
    {
        if (StorableText.Problem(connection.ClientId, StorableText.MaxClientIdBytes) is { } idProblem)
        {
            return Refuse(e, MqttConnectReasonCode.ClientIdentifierNotValid, "client id", idProblem);
        }

        if (StorableText.Problem(connection.Username) is { } userProblem)
        {
            return Refuse(e, MqttConnectReasonCode.BadUserNameOrPassword, "username", userProblem);
        }

        if (StorableText.Problem(connection.Will?.Topic) is { } willProblem)
        {
            return Refuse(e, MqttConnectReasonCode.TopicNameInvalid, "Will topic", willProblem);
        }

        if (connection.Will is { } will && will.Payload.Length > maxPayloadBytes)
        {
            return Refuse(e, MqttConnectReasonCode.PacketTooLarge, "Will", TooLarge(will.Payload.Length));
        }

        return true;
    }

    // One topic filter of a SUBSCRIBE; a refused one gets its own reason code in the SUBACK, the others go on.
    public void CheckSubscription(InterceptingSubscriptionEventArgs e, BrokerSession? session)
    {
        var filter = e.TopicFilter.Topic;
        if (StorableText.Problem(filter, StorableText.MaxTopicFilterBytes) is { } problem)
        {
            RefuseSubscription(e, MqttSubscribeReasonCode.TopicFilterInvalid, problem);
            return;
        }

        // A filter the session has already is replaced, not added.
        if (session?.Connection is not { } connection || session.IsSubscribed(filter, out var subscriptions) || connection.NewFiltersInPacket.Contains(filter))
        {
            return;
        }

        if (subscriptions + connection.NewFiltersInPacket.Count >= maxSubscriptions)
        {
            RefuseSubscription(e, MqttSubscribeReasonCode.QuotaExceeded, $"the client has Mqtt:Embedded:MaxSubscriptionsPerClient ({maxSubscriptions}) already");
            return;
        }

        connection.NewFiltersInPacket.Add(filter);
    }

    // A PUBLISH the broker will not route. Returns whether it may be routed.
    public bool MayPublish(InterceptingPublishEventArgs e)
    {
        if (StorableText.Problem(e.ApplicationMessage.Topic) is { } problem)
        {
            e.ProcessPublish = false;
            e.Response.ReasonCode = MqttPubAckReasonCode.TopicNameInvalid;
            e.Response.ReasonString = $"topic refused: {problem}";
            LogPublishRefused(LogText.Printable(e.ClientId, 128), LogText.Printable(e.ApplicationMessage.Topic, 256), problem);
            return false;
        }

        if (e.ApplicationMessage.Payload.Length > maxPayloadBytes)
        {
            // MQTT 5 has no "too large" for a PUBACK: 0x97 is its "an administrative limit has been exceeded".
            var tooLarge = TooLarge(e.ApplicationMessage.Payload.Length);
            e.ProcessPublish = false;
            e.Response.ReasonCode = MqttPubAckReasonCode.QuotaExceeded;
            e.Response.ReasonString = $"payload refused: {tooLarge}";
            LogPublishRefused(LogText.Printable(e.ClientId, 128), LogText.Printable(e.ApplicationMessage.Topic, 256), tooLarge);
            return false;
        }

        return true;
    }

    private void RefuseSubscription(InterceptingSubscriptionEventArgs e, MqttSubscribeReasonCode code, string problem)
    {
        e.ProcessSubscription = false;
        e.Response.ReasonCode = code;
        e.ReasonString = $"topic filter refused: {problem}";
        LogSubscriptionRefused(LogText.Printable(e.ClientId, 128), LogText.Printable(e.TopicFilter.Topic, 256), problem);
    }

    private string TooLarge(long bytes) => $"its payload of {bytes} bytes exceeds Ingest:MaxPayloadBytes ({maxPayloadBytes})";

    private bool Refuse(ValidatingConnectionEventArgs e, MqttConnectReasonCode code, string what, string problem)
    {
        e.ReasonCode = code;
        e.ReasonString = $"{what} refused: {problem}";
        LogConnectRefused(LogText.Printable(e.ClientId, 128), what, problem);
        return false;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker refused client {ClientId}: its {What} cannot be kept ({Problem})")]
    private partial void LogConnectRefused(string clientId, string what, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker refused the subscription of {ClientId} to {TopicFilter}: {Problem}")]
    private partial void LogSubscriptionRefused(string clientId, string topicFilter, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker refused a message from {ClientId} on {Topic}: {Problem}")]
    private partial void LogPublishRefused(string clientId, string topic, string problem);
}
