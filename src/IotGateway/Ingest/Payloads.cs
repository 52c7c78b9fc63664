using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace IotGateway.Ingest;

// Json and Text keep the device's UTF-8 bytes (stored as they are, without a round trip through UTF-16; JSON
// rewritten only where a string needed repair, see JsonText); Binary carries its base64 text. MessageIdProblem says
// why the reading's message id cannot be used: such a reading is rejected, not stored without its id.
public readonly record struct ClassifiedPayload(PayloadFormat Format, byte[]? Utf8, string? Base64, string? MessageKey, string? MessageIdProblem = null);

// Decides how a device's bytes are stored: JSON as sent, other UTF-8 as text, anything else as base64.
public static class Payloads
{
    public const int MaxMessageKeyLength = 200;

    // UTF-8 is checked first and on its own: Utf8JsonReader accepts invalid UTF-8 inside strings. Text holding NUL is
    // binary too: no text column of PostgreSQL takes it, and few log or CSV readers survive it.
    public static ClassifiedPayload Classify(byte[] payload)
    {
        if (!Utf8.IsValid(payload) || payload.AsSpan().Contains((byte)0))
        {
            return new ClassifiedPayload(PayloadFormat.Binary, null, Convert.ToBase64String(payload), null);
        }

        // A number PostgreSQL's numeric cannot hold is valid JSON but no jsonb: the aggregates would fail on it. Stored
        // as text on either database, so a reading is stored alike on both.
        if (JsonText.Repair(payload, out var numbersFitNumeric) is not { } json || !numbersFitNumeric)
        {
            return new ClassifiedPayload(PayloadFormat.Text, payload, null, null);
        }

        // From the bytes as sent: an id repaired to U+FFFD could collide with another and drop a reading as a duplicate.
        var (key, problem) = FindMessageId(payload);
        return new ClassifiedPayload(PayloadFormat.Json, json, null, problem is null ? key : null, problem);
    }

    // A message id given some other way (the MQTT 5 user property message-id): the same rules as in the payload.
    public static string? MessageIdProblem(string? id) => id switch
    {
        null => null,
        "" => "the message id is empty",
        { Length: > MaxMessageKeyLength } => $"the message id is longer than {MaxMessageKeyLength} characters",
        _ => null,
    };

    // The reading's id: "messageId" at the top level, else "uuid"; a string (its value) or a number (its text as
    // written, so 1 and "1" are the same id, 1 and 1.0 are not). null is no id. The JSON is valid (JsonText.Repair).
    private static (string? Key, string? Problem) FindMessageId(byte[] json)
    {
        var messageId = default(IdField);
        var uuid = default(IdField);
        var reader = new Utf8JsonReader(json, JsonText.ReaderOptions);
        while (reader.Read())
        {
            // A name with a lone surrogate is no name the gateway looks for (and cannot be compared without throwing).
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1
                && !(reader.ValueIsEscaped && JsonText.NeedsRepair(reader.ValueSpan)))
            {
                var isMessageId = reader.ValueTextEquals("messageId"u8);
                var isUuid = !isMessageId && reader.ValueTextEquals("uuid"u8);
                reader.Read();
                if (isMessageId)
                {
                    messageId = messageId.With(ref reader);
                }
                else if (isUuid)
                {
                    uuid = uuid.With(ref reader);
                }
            }

            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && reader.CurrentDepth >= 1)
            {
                reader.Skip();
            }
        }

        var field = messageId.Count > 0 ? messageId : uuid;
        var name = messageId.Count > 0 ? "messageId" : "uuid";
        return field switch
        {
            { Count: 0 } => (null, null),
            { Count: > 1 } => (null, $"\"{name}\" appears more than once"),
            { Problem: { } problem } => (null, $"\"{name}\": {problem}"),
            _ => (field.Value, MessageIdProblem(field.Value) is { } problem ? $"\"{name}\": {problem}" : null),
        };
    }

    private readonly record struct IdField(int Count, string? Value, string? Problem)
    {
        public IdField With(ref Utf8JsonReader reader) => reader.TokenType switch
        {
            JsonTokenType.String when reader.ValueIsEscaped && JsonText.NeedsRepair(reader.ValueSpan) =>
                new IdField(Count + 1, null, "the message id is not valid Unicode (a lone surrogate or NUL)"),
            JsonTokenType.String => new IdField(Count + 1, reader.GetString(), null),
            JsonTokenType.Number => new IdField(Count + 1, Encoding.UTF8.GetString(reader.ValueSpan), null),
            JsonTokenType.Null => new IdField(Count + 1, null, null),
            _ => new IdField(Count + 1, null, $"a message id must be a string or a number, not {reader.TokenType}"),
        };
    }
}
