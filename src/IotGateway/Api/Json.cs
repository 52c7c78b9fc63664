using System.Text;
using System.Text.Json;

namespace IotGateway.Api;

public static class Json
{
    // Stored JSON as an element to serve; text that is not JSON, or JSON that cannot be written back (SafeJson), is
    // served as a JSON string.
    public static JsonElement? Parse(string? text)
    {
        if (text is null)
        {
            return null;
        }

        if (SafeJson.IsWritable(Encoding.UTF8.GetBytes(text)))
        {
            using var document = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = SafeJson.MaxDepth });
            return document.RootElement.Clone();
        }

        return JsonSerializer.SerializeToElement(text);
    }
}
