using System.Buffers;
using System.Text.Json.Nodes;
using IotGateway.Protocol;

namespace IotGateway.Bench.Infrastructure;

/// <summary>What a device does with a command: parse {"uuid","command"} and build the article's commandResp with PONG.</summary>
public static class PingResponder
{
    // Only written, never attached to a parent: one instance serves every answer.
    private static readonly JsonNode Pong = JsonValue.Create("PONG");

    /// <summary>The answer to a command request, or null when the request is not JSON with a uuid.</summary>
    public static byte[]? Answer(string deviceId, ReadOnlySequence<byte> request)
    {
        if (!CommandRequest.TryParse(request, out var parsed, out _))
        {
            return null;
        }

        using (parsed)
        {
            return CommandResponse.ToJson(deviceId, Pong, parsed.Uuid, parsed.Command ?? "");
        }
    }
}
