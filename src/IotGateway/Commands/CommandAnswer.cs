using System.Text.Json;

namespace IotGateway.Commands;

// A device's answer on {CommandResponse}/{deviceId}: {"uuid":…,"commandResult":…,…}.
public readonly record struct CommandAnswer(Guid CommandId, string Result, bool IsError)
{
    public static bool TryParse(byte[] payload, out CommandAnswer answer, out string? problem)
    {
        answer = default;
        try
        {
            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problem = "the answer is not a JSON object";
                return false;
            }

            if (!root.TryGetProperty("uuid", out var uuid) || uuid.ValueKind != JsonValueKind.String || !Guid.TryParse(uuid.GetString(), out var id))
            {
                problem = "the answer has no \"uuid\" naming a command";
                return false;
            }

            var result = root.TryGetProperty("commandResult", out var value)
                ? value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText()
                : "";
            // The article's convention: a result that starts with ERROR (ERROR_UNKNOWN_COMMAND, …) is a failure.
            var isError = value.ValueKind == JsonValueKind.String && result.StartsWith("ERROR", StringComparison.OrdinalIgnoreCase);
            answer = new CommandAnswer(id, result, isError);
            problem = null;
            return true;
        }
        catch (JsonException ex)
        {
            problem = $"the answer is not valid JSON ({ex.Message})";
            return false;
        }
    }
}
