using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;

namespace IotGateway.Protocol;

// {"uuid":"<id>","command":"PING","payload":{...optional arguments}}: written by the gateway, read by the device.
// Keeps the parsed document because the answer echoes every field of the request, as the article's spread does.
public sealed class CommandRequest : IDisposable
{
    private readonly JsonDocument _document;

    private CommandRequest(JsonDocument document, string uuid, string? command, JsonElement? arguments)
    {
        _document = document;
        Uuid = uuid;
        Command = command;
        Arguments = arguments;
    }

    public string Uuid { get; }

    // Null when the request names no command; it is then answered as unknown rather than dropped,
    // because the uuid tells the server which request failed.
    public string? Command { get; }

    public JsonElement? Arguments { get; }

    public JsonElement Root => _document.RootElement;

    public static bool TryParse(ReadOnlySequence<byte> payload, [NotNullWhen(true)] out CommandRequest? request, [NotNullWhen(false)] out string? problem)
    {
        request = null;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(payload);
        }
        catch (JsonException ex)
        {
            problem = $"not JSON ({ex.Message})";
            return false;
        }

        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            problem = "not a JSON object";
            return false;
        }

        if (!root.TryGetProperty("uuid", out var uuid) || uuid.ValueKind != JsonValueKind.String || uuid.GetString() is not { Length: > 0 } id)
        {
            document.Dispose();
            problem = "no \"uuid\" to answer to";
            return false;
        }

        var command = root.TryGetProperty("command", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : null;
        JsonElement? arguments = root.TryGetProperty("payload", out var payloadElement) ? payloadElement : null;
        request = new CommandRequest(document, id, command, arguments);
        problem = null;
        return true;
    }

    public void Dispose() => _document.Dispose();

    // The gateway's request. The payload is JSON text the gateway validated when the command was queued.
    public static byte[] ToJson(string uuid, string command, string? payloadJson)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("uuid", uuid);
            json.WriteString("command", command);
            if (payloadJson is not null)
            {
                json.WritePropertyName("payload");
                json.WriteRawValue(payloadJson, skipInputValidation: true);
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
