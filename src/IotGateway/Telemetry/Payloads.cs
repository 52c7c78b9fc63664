using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using IotGateway.Data;

namespace IotGateway.Telemetry;

// Json and Text keep the device's UTF-8 bytes (stored as they are, without a round trip through UTF-16);
// Binary carries its base64 text.
public readonly record struct ClassifiedPayload(PayloadFormat Format, byte[]? Utf8, string? Base64, string? MessageKey);

// Decides how a device's bytes are stored: JSON as sent, other UTF-8 as text, anything else as base64.
public static class Payloads
{
    public const int MaxMessageKeyLength = 200;

    // UTF-8 is checked first and on its own: Utf8JsonReader accepts invalid UTF-8 inside strings.
    public static ClassifiedPayload Classify(byte[] payload)
    {
        if (!Utf8.IsValid(payload))
        {
            return new ClassifiedPayload(PayloadFormat.Binary, null, Convert.ToBase64String(payload), null);
        }

        return TryReadJson(payload, out var messageKey)
            ? new ClassifiedPayload(PayloadFormat.Json, payload, null, messageKey)
            : new ClassifiedPayload(PayloadFormat.Text, payload, null, null);
    }

    private static bool TryReadJson(byte[] payload, out string? messageKey)
    {
        messageKey = null;
        string? uuid = null;
        var reader = new Utf8JsonReader(payload, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1)
                {
                    var isMessageId = reader.ValueTextEquals("messageId"u8);
                    var isUuid = !isMessageId && reader.ValueTextEquals("uuid"u8);
                    reader.Read();
                    if ((isMessageId || isUuid) && reader.TokenType is JsonTokenType.String or JsonTokenType.Number)
                    {
                        var value = reader.TokenType == JsonTokenType.String ? reader.GetString() : Encoding.UTF8.GetString(reader.ValueSpan);
                        if (!string.IsNullOrEmpty(value) && value.Length <= MaxMessageKeyLength)
                        {
                            if (isMessageId)
                            {
                                messageKey = value;
                            }
                            else
                            {
                                uuid = value;
                            }
                        }
                    }
                    else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                    {
                        reader.Skip();
                    }
                }
            }

            messageKey ??= uuid;
            return true;
        }
        catch (JsonException)
        {
            messageKey = null;
            return false;
        }
    }
}
