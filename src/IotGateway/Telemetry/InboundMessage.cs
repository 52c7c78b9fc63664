using System.Buffers;
using System.Text;
using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Telemetry;

// One message from the broker on its way to the database. It keeps the MQTTnet event so the writer can
// acknowledge it after the commit, and the connection generation so a stale ack is never sent.
public sealed class InboundMessage
{
    private InboundMessage(MqttApplicationMessageReceivedEventArgs source, long generation, string topic, byte[]? payload,
        int payloadLength, bool retain, MqttQualityOfServiceLevel qos, string? userMessageId, DateTimeOffset receivedAt)
    {
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

    public MqttApplicationMessageReceivedEventArgs Source { get; }
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

    public static InboundMessage From(MqttApplicationMessageReceivedEventArgs e, long generation, DateTimeOffset receivedAt, int maxPayloadBytes)
    {
        var message = e.ApplicationMessage;
        var length = message.Payload.Length > int.MaxValue ? int.MaxValue : (int)message.Payload.Length;
        var payload = length <= maxPayloadBytes ? message.Payload.ToArray() : null;
        return new InboundMessage(e, generation, message.Topic, payload, length, message.Retain,
            message.QualityOfServiceLevel, FindMessageId(message), receivedAt);
    }

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
