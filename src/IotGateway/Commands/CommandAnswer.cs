using IotGateway.Observability;
using IotGateway.Protocol;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace IotGateway.Commands;

// A device's answer on {CommandResponse}/{deviceId}: {"uuid":…,"commandResult":…,…}. Response is the whole answer
// as stored (strings repaired, see JsonText). Parsing never throws: anything unusable is a problem.
public readonly record struct CommandAnswer(Guid CommandId, string Result, bool IsError, string Response)
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = JsonText.MaxDepth, AllowDuplicateProperties = false };

    public static bool TryParse(byte[] payload, string deviceId, out CommandAnswer answer, out string? problem)
    {
        answer = default;
        if (!Utf8.IsValid(payload))
        {
            problem = "the answer is not UTF-8";
            return false;
        }

        if (JsonText.Repair(payload) is not { } json)
        {
            problem = $"the answer is not valid JSON (or nested deeper than {JsonText.MaxDepth})";
            return false;
        }

        try
        {
            using var document = JsonDocument.Parse(json, DocumentOptions);
            problem = Read(document.RootElement, deviceId, out var id, out var result);
            if (problem is not null)
            {
                return false;
            }

            var isError = result.ValueKind == JsonValueKind.String && CommandResponse.IsError(result.GetString()!);
            var text = result.ValueKind == JsonValueKind.String ? result.GetString()! : result.GetRawText();
            answer = new CommandAnswer(id, text, isError, Encoding.UTF8.GetString(json));
            return true;
        }
        catch (JsonException ex)
        {
            // Duplicate keys: which of two commandResults or uuids is meant is a guess the gateway does not make.
            problem = $"the answer is not usable JSON ({ex.Message})";
            return false;
        }
    }

    private static string? Read(JsonElement root, string deviceId, out Guid id, out JsonElement result)
    {
        id = default;
        result = default;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return "the answer is not a JSON object";
        }

        if (!root.TryGetProperty(CommandResponse.UuidField, out var uuid) || uuid.ValueKind != JsonValueKind.String || !Guid.TryParse(uuid.GetString(), out id))
        {
            return "the answer has no \"uuid\" naming a command";
        }

        // The topic names the device (a broker's ACL can hold a device to its own topics); a body that names another
        // is a device confused about who it is.
        if (root.TryGetProperty(CommandResponse.DeviceIdField, out var named) && (named.ValueKind != JsonValueKind.String || named.GetString() != deviceId))
        {
            return $"its \"deviceId\" ({LogText.Printable(named.ToString(), 130)}) is not the topic's device";
        }

        if (!root.TryGetProperty(CommandResponse.ResultField, out result) || result.ValueKind == JsonValueKind.Null)
        {
            return "the answer has no \"commandResult\"";
        }

        return null;
    }
}
