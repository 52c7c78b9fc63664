using System.Buffers;
using System.Text;
using System.Text.Json;

namespace IotGateway.Events;

// One live event: the JSON object of its `data:` line, written once however many clients receive it.
public sealed class ServerEvent(string? deviceId, byte[] data)
{
    public string? DeviceId { get; } = deviceId;
    public byte[] Data { get; } = data;

    public override string ToString() => Encoding.UTF8.GetString(Data);

    public static ServerEvent Presence(string deviceId, bool signedIn, DateTimeOffset at) => Write(deviceId, "presence", json =>
    {
        json.WriteBoolean("signedIn", signedIn);
        json.WriteString("at", ApiTime.ToText(at));
    });

    // A stored reading: its payload as the device sent it (JSON on one line, else text, or base64 for binary).
    public static ServerEvent Reading(string deviceId, DateTimeOffset receivedAt, string topic, PayloadFormat format, byte[]? utf8,
        string? base64, string? messageKey)
    {
        utf8 ??= [];
        var buffer = new ArrayBufferWriter<byte>(256 + utf8.Length);
        using (var json = new Utf8JsonWriter(buffer))
        {
            Start(json, deviceId, "reading");
            json.WriteString("receivedAt", ApiTime.ToText(receivedAt));
            json.WriteString("topic", topic);
            json.WriteString("format", format.ToString());
            json.WritePropertyName("payload");
            if (base64 is not null)
            {
                json.WriteStringValue(base64);
            }
            else if (format == PayloadFormat.Json && JsonText.Repair(utf8) is { } valid)
            {
                var compact = new ArrayBufferWriter<byte>(valid.Length);
                CompactJson.Write(valid, compact);
                json.WriteRawValue(compact.WrittenSpan, skipInputValidation: true);
            }
            else
            {
                json.WriteStringValue(Encoding.UTF8.GetString(utf8));
            }

            if (messageKey is not null)
            {
                json.WriteString("messageKey", messageKey);
            }

            json.WriteEndObject();
        }

        return new ServerEvent(deviceId, buffer.WrittenSpan.ToArray());
    }

    public static ServerEvent Command(string deviceId, Guid commandId, CommandStatus status, DateTimeOffset at, string? result = null) =>
        Write(deviceId, "command", json =>
        {
            json.WriteString("commandId", commandId);
            json.WriteString("status", status.ToString());
            json.WriteString("at", ApiTime.ToText(at));
            if (result is not null)
            {
                json.WriteString("result", result);
            }
        });

    // The last event a dropped client is sent, when it still reads at all.
    public static ServerEvent Dropped(string? deviceId, string reason) => Write(deviceId, "dropped", json => json.WriteString("reason", reason));

    private static ServerEvent Write(string? deviceId, string type, Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(192);
        using (var json = new Utf8JsonWriter(buffer))
        {
            Start(json, deviceId, type);
            body(json);
            json.WriteEndObject();
        }

        return new ServerEvent(deviceId, buffer.WrittenSpan.ToArray());
    }

    private static void Start(Utf8JsonWriter json, string? deviceId, string type)
    {
        json.WriteStartObject();
        json.WriteString("type", type);
        json.WriteString("deviceId", deviceId);
    }
}
