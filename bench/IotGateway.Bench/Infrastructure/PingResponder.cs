using System.Buffers;
using System.Text.Json;

namespace IotGateway.Bench.Infrastructure;

/// <summary>What a device does with a command: parse {"uuid","command"} and build the article's commandResp with PONG.</summary>
public static class PingResponder
{
    /// <summary>The answer to a command request, or null when the request is not JSON with a uuid.</summary>
    public static byte[]? Answer(string deviceId, ReadOnlySequence<byte> request)
    {
        string? uuid, command;
        try
        {
            using var document = JsonDocument.Parse(request);
            var root = document.RootElement;
            uuid = root.TryGetProperty("uuid", out var u) ? u.GetString() : null;
            command = root.TryGetProperty("command", out var c) ? c.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }

        if (uuid is null)
        {
            return null;
        }

        var buffer = new ArrayBufferWriter<byte>(192);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("deviceId", deviceId);
            writer.WriteString("messageType", "commandResp");
            writer.WriteString("commandResult", "PONG");
            writer.WriteString("uuid", uuid);
            writer.WriteString("command", command);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
