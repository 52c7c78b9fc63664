using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace IotGateway.Data;

// What the gateway stores as JSON must read back everywhere: System.Text.Json (which cannot write a string holding
// a lone surrogate), SQLite's json functions, and PostgreSQL's jsonb (which refuses \u0000 and lone surrogates).
// So a string escape that is a lone surrogate or NUL is rewritten as U+FFFD at ingest, and JSON nested deeper than
// MaxDepth is not JSON to the gateway (a reading is then stored as text).
public static class JsonText
{
    // The reader's depth on the way in; the API's serializer allows more, since it wraps stored JSON in its answers.
    public const int MaxDepth = 64;

    public const int ApiMaxDepth = MaxDepth + 16;

    public static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = MaxDepth };

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        MaxDepth = ApiMaxDepth,
        SkipValidation = true,
    };

    // True when this raw (still escaped) string token holds an escape that must be rewritten.
    public static bool NeedsRepair(ReadOnlySpan<byte> escaped)
    {
        for (var i = escaped.IndexOf((byte)'\\'); i >= 0 && i < escaped.Length - 1; i++)
        {
            if (escaped[i] != '\\')
            {
                continue;
            }

            if (escaped[i + 1] != 'u')
            {
                i++;
                continue;
            }

            var unit = Hex(escaped, i + 2);
            if (unit == 0)
            {
                return true;
            }

            if (char.IsHighSurrogate((char)unit))
            {
                if (!(i + 11 < escaped.Length && escaped[i + 6] == '\\' && escaped[i + 7] == 'u' && char.IsLowSurrogate((char)Hex(escaped, i + 8))))
                {
                    return true;
                }

                i += 11;
                continue;
            }

            if (char.IsLowSurrogate((char)unit))
            {
                return true;
            }

            i += 5;
        }

        return false;
    }

    // A string token's value with lone surrogates and NUL as U+FFFD; never throws on valid JSON.
    public static string Unescape(ReadOnlySpan<byte> escaped)
    {
        var text = new StringBuilder(escaped.Length);
        var run = 0;
        for (var i = 0; i < escaped.Length; i++)
        {
            if (escaped[i] != '\\')
            {
                continue;
            }

            text.Append(Encoding.UTF8.GetString(escaped[run..i]));
            var kind = escaped[i + 1];
            i++;
            switch (kind)
            {
                case (byte)'b': text.Append('\b'); break;
                case (byte)'f': text.Append('\f'); break;
                case (byte)'n': text.Append('\n'); break;
                case (byte)'r': text.Append('\r'); break;
                case (byte)'t': text.Append('\t'); break;
                case (byte)'u':
                    var unit = (char)Hex(escaped, i + 1);
                    i += 4;
                    if (char.IsHighSurrogate(unit) && i + 6 < escaped.Length && escaped[i + 1] == '\\' && escaped[i + 2] == 'u'
                        && char.IsLowSurrogate((char)Hex(escaped, i + 3)))
                    {
                        text.Append(unit).Append((char)Hex(escaped, i + 3));
                        i += 6;
                    }
                    else
                    {
                        text.Append(unit == '\0' || char.IsSurrogate(unit) ? '\uFFFD' : unit);
                    }

                    break;
                default: text.Append((char)kind); break; // \" \\ \/
            }

            run = i + 1;
        }

        return text.Append(Encoding.UTF8.GetString(escaped[run..])).ToString();
    }

    // Valid JSON (at most MaxDepth deep) comes back as the same bytes, or rewritten when a string needed repair;
    // anything else returns null. The caller has checked that the bytes are UTF-8.
    public static byte[]? Repair(byte[] utf8) => Repair(utf8, out _);

    // The same, in the same one walk: whether every number fits PostgreSQL's numeric (see FitsNumeric).
    public static byte[]? Repair(byte[] utf8, out bool numbersFitNumeric)
    {
        var reader = new Utf8JsonReader(utf8, ReaderOptions);
        var repair = false;
        numbersFitNumeric = true;
        try
        {
            while (reader.Read())
            {
                if (reader.ValueIsEscaped && reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && NeedsRepair(reader.ValueSpan))
                {
                    repair = true;
                }
                else if (reader.TokenType == JsonTokenType.Number && numbersFitNumeric && !FitsNumeric(reader.ValueSpan))
                {
                    numbersFitNumeric = false;
                }
            }
        }
        catch (JsonException)
        {
            return null;
        }

        return repair ? Rewrite(utf8) : utf8;
    }

    // PostgreSQL's numeric (which jsonb keeps numbers in) holds at most 131,072 digits before the point and 16,383
    // after it, once the exponent is applied; beyond, jsonb refuses the whole document.
    private const int NumericMaxIntegerDigits = 131_072;
    private const int NumericMaxScale = 16_383;

    // One JSON number token (valid JSON: -?digits(.digits)?([eE][+-]?digits)?).
    private static bool FitsNumeric(ReadOnlySpan<byte> number)
    {
        var e = number.IndexOfAny((byte)'e', (byte)'E');
        var mantissa = e < 0 ? number : number[..e];
        var exponent = 0;
        if (e >= 0 && !int.TryParse(number[(e + 1)..], System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out exponent))
        {
            return false; // an exponent beyond int: far beyond both limits
        }

        mantissa = mantissa.TrimStart((byte)'-');
        var point = mantissa.IndexOf((byte)'.');
        var integer = point < 0 ? mantissa : mantissa[..point];
        var fraction = point < 0 ? [] : mantissa[(point + 1)..];
        if (fraction.Length - (long)exponent > NumericMaxScale)
        {
            return false; // a zero too: PostgreSQL keeps its scale
        }

        // Digits before the point, before the exponent: of the integer part, or minus the fraction's leading zeros.
        var significant = integer.TrimStart((byte)'0').Length;
        var firstInFraction = fraction.IndexOfAnyExcept((byte)'0');
        if (significant == 0 && firstInFraction < 0)
        {
            return true; // zero
        }

        var lead = significant > 0 ? significant : -firstInFraction;
        return lead + (long)exponent <= NumericMaxIntegerDigits;
    }

    // The same JSON with every string that holds a lone surrogate or NUL rewritten; the rest as the device wrote it.
    private static byte[] Rewrite(byte[] utf8)
    {
        var output = new ArrayBufferWriter<byte>(utf8.Length + 16);
        using (var writer = new Utf8JsonWriter(output, WriterOptions))
        {
            var reader = new Utf8JsonReader(utf8, ReaderOptions);
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject: writer.WriteStartObject(); break;
                    case JsonTokenType.EndObject: writer.WriteEndObject(); break;
                    case JsonTokenType.StartArray: writer.WriteStartArray(); break;
                    case JsonTokenType.EndArray: writer.WriteEndArray(); break;
                    case JsonTokenType.PropertyName when reader.ValueIsEscaped: writer.WritePropertyName(Unescape(reader.ValueSpan)); break;
                    case JsonTokenType.PropertyName: writer.WritePropertyName(reader.ValueSpan); break;
                    case JsonTokenType.String when reader.ValueIsEscaped: writer.WriteStringValue(Unescape(reader.ValueSpan)); break;
                    case JsonTokenType.String: writer.WriteStringValue(reader.ValueSpan); break;
                    default: writer.WriteRawValue(reader.ValueSpan, skipInputValidation: true); break; // numbers, true, false, null
                }
            }
        }

        return output.WrittenSpan.ToArray();
    }

    private static int Hex(ReadOnlySpan<byte> text, int start) =>
        start + 4 <= text.Length && int.TryParse(text.Slice(start, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var value) ? value : -1;
}
