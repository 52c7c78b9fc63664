using System.Text;
using System.Text.Json;
using IotGateway.Telemetry;

namespace IotGateway.Api;

public static class Json
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = JsonText.MaxDepth };

    // Stored JSON as an element the API can always write: what ingest normalised reads back as it is; anything stored
    // before that (a lone surrogate escape, too deep) is repaired or returned as a string, never a failed response.
    public static JsonElement? Parse(string? text)
    {
        if (text is null)
        {
            return null;
        }

        if (JsonText.Repair(Encoding.UTF8.GetBytes(text)) is { } json)
        {
            using var document = JsonDocument.Parse(json, Options);
            return document.RootElement.Clone();
        }

        return JsonSerializer.SerializeToElement(text);
    }
}
