using System.Buffers;
using System.Text;
using System.Text.Unicode;
using IotGateway.Commands;
using IotGateway.Devices;
using IotGateway.Mqtt;
using IotGateway.Observability;
using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Ingest;

// Why a message is not stored: a metric label (iot_gateway_messages_rejected_total{reason}) and a log line.
public readonly record struct Rejection(string Reason, string Detail);

// One message from the broker (or from a TCP device) on its way to the database. It keeps the MQTTnet event so the
// writer can acknowledge it after the commit, and the connection generation so a stale ack is never sent. Its topic is parsed
// and its payload classified here, on MQTTnet's receive side: the one writer thread, which sets the pace of a
// backlog drain, then only stores. Classification never throws: what cannot be used is a Rejection, which the
// writer logs, counts and acknowledges like a stored message.
public sealed class InboundMessage
{
    // A TCP device's messages are stored under this "topic".
    public const string TcpTopic = "tcp";

    private InboundMessage(MqttApplicationMessageReceivedEventArgs source, long generation, DateTimeOffset receivedAt)
    {
        Source = source;
        Generation = generation;
        ReceivedAt = receivedAt;
        var message = source.ApplicationMessage;
        Topic = message.Topic ?? "";
        PayloadLength = message.Payload.Length > int.MaxValue ? int.MaxValue : (int)message.Payload.Length;
        Retain = message.Retain;
        Qos = message.QualityOfServiceLevel;
    }

    private InboundMessage(int payloadLength, DateTimeOffset receivedAt)
    {
        IsTcp = true;
        ReceivedAt = receivedAt;
        Topic = TcpTopic;
        PayloadLength = payloadLength;
        Qos = MqttQualityOfServiceLevel.AtMostOnce;
    }

    // Null for a TCP device's message: there is nothing to acknowledge.
    public MqttApplicationMessageReceivedEventArgs? Source { get; }

    // From a TCP device's connection, not from the broker.
    public bool IsTcp { get; }
    public long Generation { get; }
    public string Topic { get; }
    public int PayloadLength { get; }
    public bool Retain { get; }
    public MqttQualityOfServiceLevel Qos { get; }
    public DateTimeOffset ReceivedAt { get; }

    // Null when the topic is not one of the gateway's prefixes.
    public TopicKind? Kind { get; private set; }

    // Set (a valid device id) whenever Rejection is null.
    public string? DeviceId { get; private set; }

    public Rejection? Rejection { get; private set; }

    // Data: the classified reading and its id (from the user property message-id, else from the payload).
    public ClassifiedPayload? Reading { get; private set; }
    public string? MessageKey { get; private set; }

    // CommandResponse: the parsed answer.
    public CommandAnswer? Answer { get; private set; }

    // Register: SIGN_IN (true) or SIGN_OUT (false); null for an empty payload (a cleared retained message).
    public bool? SignedIn { get; private set; }

    public static InboundMessage From(MqttApplicationMessageReceivedEventArgs e, long generation, DateTimeOffset receivedAt, int maxPayloadBytes,
        TopicLayout topics)
    {
        var inbound = new InboundMessage(e, generation, receivedAt);
        return inbound.Classified(() => inbound.Classify(e.ApplicationMessage, maxPayloadBytes, topics));
    }

    // A TCP device's message: its JSON object, framed within the payload limit, from the device its connection names
    // (a valid id). Classified like an MQTT payload; a presence change is SIGN_IN or SIGN_OUT.
    public static InboundMessage FromTcp(TopicKind kind, string deviceId, byte[] payload, DateTimeOffset receivedAt)
    {
        var inbound = new InboundMessage(payload.Length, receivedAt) { Kind = kind, DeviceId = deviceId };
        return inbound.Classified(() => kind switch
        {
            TopicKind.Data => inbound.ClassifyReading(null, payload, deviceId),
            TopicKind.CommandResponse => inbound.ClassifyAnswer(payload, deviceId),
            _ => inbound.ClassifyPresence(payload, deviceId),
        });
    }

    private InboundMessage Classified(Func<Rejection?> classify)
    {
        try
        {
            Rejection = classify();
        }
        catch (Exception ex)
        {
            // A bug in classification must cost one message, never the handler (an unacknowledged message holds one of
            // the broker's in-flight slots until the next connection).
            Rejection = new Rejection("unreadable", $"message on '{LogText.Printable(Topic)}' could not be read: {LogText.Printable(ex.Message, 200)}");
        }

        if (Rejection is not null)
        {
            Reading = null;
            Answer = null;
            SignedIn = null;
        }

        return this;
    }

    private Rejection? Classify(MqttApplicationMessage message, int maxPayloadBytes, TopicLayout topics)
    {
        if (!topics.TryMatch(Topic, out var kind, out var deviceId))
        {
            return new Rejection("unknown-topic", $"topic '{LogText.Printable(Topic)}' is not {{prefix}}/{{deviceId}}");
        }

        Kind = kind;
        if (DeviceIds.Validate(deviceId) is { } idProblem)
        {
            return new Rejection("bad-device-id", $"topic '{LogText.Printable(Topic, 200)}': {idProblem}");
        }

        DeviceId = deviceId;
        if (PayloadLength > maxPayloadBytes)
        {
            return new Rejection("oversized", $"payload of {PayloadLength} bytes from '{deviceId}' exceeds Ingest:MaxPayloadBytes ({maxPayloadBytes})");
        }

        var payload = message.Payload.ToArray();
        return kind switch
        {
            TopicKind.Data => ClassifyReading(FindUserPropertyId(message), payload, deviceId),
            TopicKind.CommandResponse => ClassifyAnswer(payload, deviceId),
            _ => ClassifyPresence(payload, deviceId),
        };
    }

    private Rejection? ClassifyReading(ReadOnlyMemory<byte>? userPropertyId, byte[] payload, string deviceId)
    {
        if (payload.Length == 0)
        {
            return new Rejection("empty", $"empty telemetry payload from '{deviceId}'");
        }

        var reading = Payloads.Classify(payload);
        Reading = reading;
        if (userPropertyId is { } property)
        {
            if (!Utf8.IsValid(property.Span))
            {
                return new Rejection("bad-message-id", $"reading from '{deviceId}': the user property message-id is not UTF-8");
            }

            var id = Encoding.UTF8.GetString(property.Span);
            if (Payloads.MessageIdProblem(id) is { } problem)
            {
                return new Rejection("bad-message-id", $"reading from '{deviceId}': user property message-id: {problem}");
            }

            MessageKey = id;
            return null;
        }

        if (reading.MessageIdProblem is { } payloadProblem)
        {
            return new Rejection("bad-message-id", $"reading from '{deviceId}': {LogText.Printable(payloadProblem, 200)}");
        }

        MessageKey = reading.MessageKey;
        return null;
    }

    private Rejection? ClassifyAnswer(byte[] payload, string deviceId)
    {
        if (!CommandAnswer.TryParse(payload, deviceId, out var answer, out var problem))
        {
            return new Rejection("bad-command-response", $"command response from '{deviceId}' ignored: {LogText.Printable(problem, 400)}");
        }

        Answer = answer;
        return null;
    }

    private Rejection? ClassifyPresence(byte[] payload, string deviceId)
    {
        if (payload.Length == 0)
        {
            return null; // a cleared retained message, not a presence change
        }

        SignedIn = payload.AsSpan().SequenceEqual("SIGN_IN"u8) ? true : payload.AsSpan().SequenceEqual("SIGN_OUT"u8) ? false : null;
        return SignedIn is null
            ? new Rejection("bad-register-payload",
                $"register payload from '{deviceId}' is '{LogText.Printable(Encoding.UTF8.GetString(payload))}', not SIGN_IN or SIGN_OUT")
            : null;
    }

    private static ReadOnlyMemory<byte>? FindUserPropertyId(MqttApplicationMessage message)
    {
        if (message.UserProperties is { Count: > 0 } properties)
        {
            foreach (var property in properties)
            {
                if (property.Name == "message-id")
                {
                    return property.ValueBuffer;
                }
            }
        }

        return null;
    }
}
