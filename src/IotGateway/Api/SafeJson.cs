using System.Buffers;
using System.Text.Json;

namespace IotGateway.Api;

// What devices send is stored as they sent it, so a read route meets whatever JSON made it through ingest. Two
// things in valid JSON still break a writer: a string escape that is half a surrogate pair ("\ud800": reading it back
// as text throws), and nesting deeper than System.Text.Json's default of 64. Such a payload is served as a JSON
// string of its text instead, never a failed response.
public static class SafeJson
{
    public const int MaxDepth = 64;

    // True when the bytes are one JSON value that System.Text.Json can write back (depth, escapes).
    public static bool IsWritable(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = MaxDepth });
        try
        {
            while (reader.Read())
            {
                if (reader.ValueIsEscaped && reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName)
                {
                    _ = reader.GetString();
                }
            }

            return reader.TokenType != JsonTokenType.None;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return false;
        }
    }

    // The same JSON on one line: whitespace outside strings dropped, every token kept as sent (numbers such as 1e400
    // keep their text). Only for bytes IsWritable accepted. NDJSON and Server-Sent Events need one line per value.
    public static void WriteCompact(ReadOnlySpan<byte> utf8, IBufferWriter<byte> output)
    {
        var span = output.GetSpan(utf8.Length);
        var length = 0;
        var inString = false;
        var escaped = false;
        foreach (var b in utf8)
        {
            if (inString)
            {
                if (escaped)
                {
                    escaped = false;
                }
                else if (b == (byte)'\\')
                {
                    escaped = true;
                }
                else if (b == (byte)'"')
                {
                    inString = false;
                }
            }
            else if (b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
            {
                continue;
            }
            else if (b == (byte)'"')
            {
                inString = true;
            }

            span[length++] = b;
        }

        output.Advance(length);
    }
}
