using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace IotGateway.Api;

public static class Json
{
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = JsonText.MaxDepth };

    // How every answer of the API is written: enums by name, times in UTC with Z (ApiTime), and no \u002B for '+':
    // the answers are application/json, never embedded in HTML, so only what JSON itself requires is escaped.
    // Stored JSON (JsonText.MaxDepth deep) is written inside the API's own objects.
    public static JsonSerializerOptions Configure(JsonSerializerOptions options)
    {
        options.Converters.Add(new JsonStringEnumConverter());
        options.Converters.Add(new ApiTimeJsonConverter());
        options.Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        options.MaxDepth = JsonText.ApiMaxDepth;
        return options;
    }

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
