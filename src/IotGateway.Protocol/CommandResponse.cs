using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace IotGateway.Protocol;

// The article's answer: {deviceId, messageType:"commandResp", commandResult, ...request}. The request's own fields
// (uuid, command, payload, anything else) are echoed after ours; a request field named like one of ours is skipped
// so a request cannot overwrite the device's answer.
public static class CommandResponse
{
    public const string MessageType = "commandResp";
    public const string UuidField = "uuid";
    public const string DeviceIdField = "deviceId";
    public const string ResultField = "commandResult";

    // The article's convention: a string result that starts with ERROR (ERROR_UNKNOWN_COMMAND, …), in capitals, is a
    // failure; "Error: none" or "errors=0" are not.
    public const string ErrorPrefix = "ERROR";

    public static bool IsError(string result) => result.StartsWith(ErrorPrefix, StringComparison.Ordinal);

    public static byte[] ToJson(string deviceId, JsonNode result, CommandRequest request) =>
        Write(deviceId, result, json =>
        {
            foreach (var field in request.Root.EnumerateObject())
            {
                if (field.NameEquals(DeviceIdField) || field.NameEquals("messageType") || field.NameEquals(ResultField))
                {
                    continue;
                }

                field.WriteTo(json);
            }
        });

    // The same answer to a request known only by its uuid and command (a device written in a test or a benchmark).
    public static byte[] ToJson(string deviceId, JsonNode result, string uuid, string command) =>
        Write(deviceId, result, json =>
        {
            json.WriteString(UuidField, uuid);
            json.WriteString("command", command);
        });

    private static byte[] Write(string deviceId, JsonNode result, Action<Utf8JsonWriter> echo)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString(DeviceIdField, deviceId);
            json.WriteString("messageType", MessageType);
            json.WritePropertyName(ResultField);
            result.WriteTo(json);
            echo(json);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
