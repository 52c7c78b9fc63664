using System.Buffers.Text;
using System.Text;

namespace IotGateway.Api;

/// <summary>A page of results, newest first unless stated otherwise.</summary>
/// <param name="Items">The results on this page.</param>
/// <param name="NextCursor">Pass as <c>cursor</c> to get the next page; null on the last page.</param>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);

// Keyset cursors are opaque to callers: base64url of the last key seen.
public static class Cursor
{
    public const int MaxLimit = 1000;
    public const int DefaultLimit = 100;

    public static string Encode(long key) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(key.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    public static string Encode(string key) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(key));

    public static bool TryDecode(string? cursor, out long key)
    {
        key = 0;
        return TryDecode(cursor, out string? text) && long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out key);
    }

    public static bool TryDecode(string? cursor, out string? key)
    {
        key = null;
        if (string.IsNullOrEmpty(cursor) || cursor.Length > 1024)
        {
            return false;
        }

        try
        {
            key = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor));
            return key.Length > 0;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
