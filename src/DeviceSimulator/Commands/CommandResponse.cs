using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace DeviceSimulator.Commands;

// The article's answer: {deviceId, messageType:"commandResp", commandResult, ...request}. The request's own fields
// (uuid, command, payload, anything else) are echoed after ours; a request field named like one of ours is skipped
// so a request cannot overwrite the device's answer.
internal static class CommandResponse
{
    public static byte[] ToJson(string deviceId, JsonNode result, CommandRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("deviceId", deviceId);
            json.WriteString("messageType", "commandResp");
            json.WritePropertyName("commandResult");
            result.WriteTo(json);
            foreach (var field in request.Root.EnumerateObject())
            {
                if (field.NameEquals("deviceId") || field.NameEquals("messageType") || field.NameEquals("commandResult"))
                {
                    continue;
                }

                field.WriteTo(json);
            }

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
