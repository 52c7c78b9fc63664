using System.Buffers;
using System.Text;
using IotGateway.Mqtt;
using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Telemetry;

// One message from the broker on its way to the database. It keeps the MQTTnet event so the writer can
// acknowledge it after the commit, and the connection generation so a stale ack is never sent. Its topic is parsed
// and a reading's payload classified here, on MQTTnet's receive side: the one writer thread, which sets the pace of
// a backlog drain, then only stores.
public sealed class InboundMessage
{
    private InboundMessage(MqttApplicationMessageReceivedEventArgs? source, long generation, string topic, byte[]? payload,
        int payloadLength, bool retain, MqttQualityOfServiceLevel qos, string? userMessageId, DateTimeOffset receivedAt,
        TopicKind? kind, string? deviceId, ClassifiedPayload? reading)
    {
        Kind = kind;
        DeviceId = deviceId;
        Reading = reading;
        Source = source;
        Generation = generation;
        Topic = topic;
        Payload = payload;
        PayloadLength = payloadLength;
        Retain = retain;
        Qos = qos;
        UserMessageId = userMessageId;
        ReceivedAt = receivedAt;
    }

    // Null for a TCP device's message: there is nothing to acknowledge.
    public MqttApplicationMessageReceivedEventArgs? Source { get; }
    public long Generation { get; }
    public string Topic { get; }

    // Null when the payload was larger than the configured limit (it is never copied).
    public byte[]? Payload { get; }
    public int PayloadLength { get; }
    public bool Retain { get; }
    public MqttQualityOfServiceLevel Qos { get; }
    public string? UserMessageId { get; }
    public DateTimeOffset ReceivedAt { get; }

    public bool IsOversized => Payload is null;

    // Null when the topic is not one of the gateway's ({prefix}/{deviceId} with a valid device id).
    public TopicKind? Kind { get; }
    public string? DeviceId { get; }

    // A reading's payload, classified; null for other topics and for empty or oversized payloads.
    public ClassifiedPayload? Reading { get; }

    public static InboundMessage From(MqttApplicationMessageReceivedEventArgs e, long generation, DateTimeOffset receivedAt, int maxPayloadBytes,
        TopicLayout topics)
    {
        var message = e.ApplicationMessage;
        var length = message.Payload.Length > int.MaxValue ? int.MaxValue : (int)message.Payload.Length;
        var payload = length <= maxPayloadBytes ? message.Payload.ToArray() : null;
        var known = topics.TryParse(message.Topic, out var kind, out var deviceId);
        var reading = known && kind == TopicKind.Data && payload is { Length: > 0 } ? Payloads.Classify(payload) : (ClassifiedPayload?)null;
        return new InboundMessage(e, generation, message.Topic, payload, length, message.Retain,
            message.QualityOfServiceLevel, FindMessageId(message), receivedAt, known ? kind : null, known ? deviceId : null, reading);
    }

    // A TCP device's message (its JSON object), already framed within the payload limit. Its "topic" is "tcp".
    public static InboundMessage FromTcp(TopicKind kind, string deviceId, byte[] payload, DateTimeOffset receivedAt)
    {
        var reading = kind == TopicKind.Data && payload.Length > 0 ? Payloads.Classify(payload) : (ClassifiedPayload?)null;
        return new InboundMessage(null, 0, TcpTopic, payload, payload.Length, retain: false, MqttQualityOfServiceLevel.AtMostOnce,
            userMessageId: null, receivedAt, kind, deviceId, reading);
    }

    public const string TcpTopic = "tcp";

    private static string? FindMessageId(MqttApplicationMessage message)
    {
        if (message.UserProperties is not { Count: > 0 } properties)
        {
            return null;
        }

        foreach (var property in properties)
        {
            if (property.Name == "message-id")
            {
                return Encoding.UTF8.GetString(property.ValueBuffer.Span);
            }
        }

        return null;
    }

    public string PayloadAsText() => Payload is null ? "" : Encoding.UTF8.GetString(Payload);
}
