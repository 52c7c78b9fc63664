using System.Globalization;
using System.Text;

namespace IotGateway.Observability;

public static class LogText
{
    // Device- or operator-supplied text in a log line (a topic, a payload, a client id, a command name): cut to a
    // length without splitting a surrogate pair, and every character that could end a line or reorder what a person
    // reads escaped as \uXXXX: control characters (including U+0085), the line and paragraph separators U+2028/U+2029,
    // format characters (the bidirectional embeddings, overrides, isolates and marks U+202A-U+202E, U+2066-U+2069,
    // U+200E/U+200F, U+061C, zero-width characters) and lone surrogates.
    public static string Printable(string? value, int maxLength = 80)
    {
        if (value is null)
        {
            return "";
        }

        var cut = value.Length <= maxLength ? value.Length : maxLength;
        if (cut > 0 && cut < value.Length && char.IsHighSurrogate(value[cut - 1]) && char.IsLowSurrogate(value[cut]))
        {
            cut--;
        }

        var text = value.AsSpan(0, cut);
        var first = IndexOfUnsafe(text);
        if (first < 0)
        {
            return cut == value.Length ? value : string.Concat(text, "…");
        }

        var escaped = new StringBuilder(text.Length + 16);
        escaped.Append(text[..first]);
        for (var i = first; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                var pair = char.ConvertToUtf32(c, text[i + 1]);
                if (IsUnsafe(CharUnicodeInfo.GetUnicodeCategory(pair)))
                {
                    escaped.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}\\u{(int)text[i + 1]:X4}");
                }
                else
                {
                    escaped.Append(c).Append(text[i + 1]);
                }

                i++;
                continue;
            }

            if (char.IsSurrogate(c) || IsUnsafe(char.GetUnicodeCategory(c)))
            {
                escaped.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            }
            else
            {
                escaped.Append(c);
            }
        }

        return cut == value.Length ? escaped.ToString() : escaped.Append('…').ToString();
    }

    private static int IndexOfUnsafe(ReadOnlySpan<char> text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c is >= ' ' and < '\u007F')
            {
                continue;
            }

            if (char.IsSurrogate(c) || IsUnsafe(char.GetUnicodeCategory(c)))
            {
                return i;
            }
        }

        return -1;
    }

    private static bool IsUnsafe(UnicodeCategory category) =>
        category is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
            or UnicodeCategory.Surrogate;
}
