using System.Globalization;
using System.Text;

namespace IotGateway.Devices;

// The one grammar for a device id, on every side (an MQTT topic level, a TCP device's field, an API route segment):
// whatever ingest accepts can be named in a URL and reached through the API, and nothing in it can address another
// topic, end a log line, or reorder what a person reads.
//
// 1 to 128 UTF-16 code units of: letters, combining marks and digits of any script (Unicode categories L, M, N),
// and - _ . : @ ~ ; not "." or ".." (URLs remove those segments). Everything else is refused, including / + #
// (MQTT), % ? (URL), spaces and other separators, control and format characters (line breaks, bidirectional
// overrides, zero-width characters), U+FFFD (a topic that was not UTF-8) and lone surrogates. Ids are compared code
// point by code point: a composed and a decomposed "é" are two devices (the gateway runs without ICU, so it does not
// normalise), both reachable.
public static class DeviceIds
{
    public const int MaxLength = 128;

    public const string Punctuation = "-_.:@~";

    public static bool IsValid(string? id) => Validate(id) is null;

    // Returns why the id is unusable, or null when it is fine.
    public static string? Validate(string? id)
    {
        if (string.IsNullOrEmpty(id))
        {
            return "A device id must not be empty.";
        }

        if (id.Length > MaxLength)
        {
            return $"A device id must be at most {MaxLength} characters.";
        }

        if (id is "." or "..")
        {
            return "A device id must not be '.' or '..' (a URL cannot carry them as a path segment).";
        }

        var text = id.AsSpan();
        while (!text.IsEmpty)
        {
            if (Rune.DecodeFromUtf16(text, out var rune, out var used) != System.Buffers.OperationStatus.Done)
            {
                return "A device id must be valid Unicode (it has a lone surrogate).";
            }

            if (!IsAllowed(rune))
            {
                return $"A device id may hold letters, digits and {Punctuation}: {Describe(rune)} is not allowed.";
            }

            text = text[used..];
        }

        return null;
    }

    private static bool IsAllowed(Rune rune) =>
        rune.IsAscii
            ? char.IsAsciiLetterOrDigit((char)rune.Value) || Punctuation.Contains((char)rune.Value)
            : Rune.GetUnicodeCategory(rune) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
                or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    // Printable in a problem detail or a log line: the character itself only when it is visible and harmless.
    private static string Describe(Rune rune) =>
        rune.Value is > 0x20 and < 0x7F ? $"'{(char)rune.Value}'" : $"U+{rune.Value:X4}";
}
