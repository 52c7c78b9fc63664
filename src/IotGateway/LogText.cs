namespace IotGateway;

public static class LogText
{
    // Device-supplied text in a log line (a topic, a payload, a client id): cut to a length, control characters
    // escaped (\u000A), so a device cannot forge a log line with a line break of its own.
    public static string Printable(string? value, int maxLength = 80)
    {
        if (value is null)
        {
            return "";
        }

        var text = value.Length <= maxLength ? value : string.Concat(value.AsSpan(0, maxLength), "…");
        if (!text.AsSpan().ContainsAnyInRange('\u0000', '\u001F') && !text.AsSpan().ContainsAnyInRange('\u007F', '\u009F'))
        {
            return text;
        }

        var escaped = new System.Text.StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            escaped.Append(char.IsControl(c) ? $"\\u{(int)c:X4}" : c);
        }

        return escaped.ToString();
    }
}
