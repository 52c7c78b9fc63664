using System.Globalization;

namespace IotGateway.Telemetry;

// The query of GET …/telemetry/aggregate, parsed: which field, which interval, which range.
public static class AggregateRequest
{
    // The range may span at most this many intervals; the answer states it, and a longer range is refused, never cut.
    public const int MaxIntervals = 100_000;

    // Without from: this many intervals before to.
    public const int DefaultIntervals = 100;

    public const long MaxIntervalSeconds = 366L * 24 * 3600;
    private const int MaxFieldSegments = 16;
    private const int MaxSegmentLength = 128;

    // "10s", "1m", "1h", "1d", or whole seconds ("60").
    public static bool TryParseInterval(string? text, out long seconds)
    {
        seconds = 0;
        if (string.IsNullOrEmpty(text) || text.Length > 12)
        {
            return false;
        }

        var unit = text[^1] switch
        {
            's' => 1L,
            'm' => 60L,
            'h' => 3600L,
            'd' => 86400L,
            _ => 0L,
        };
        var number = unit == 0 ? text : text[..^1];
        if (!long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
        {
            return false;
        }

        seconds = count * Math.Max(unit, 1);
        return seconds is > 0 and <= MaxIntervalSeconds;
    }

    // "temp", or a path into nested objects: "sensors.temp". Each name: letters, digits, '_' or '-'.
    public static IReadOnlyList<string>? ParseField(string? field)
    {
        if (string.IsNullOrEmpty(field))
        {
            return null;
        }

        var segments = field.Split('.');
        return segments.Length <= MaxFieldSegments && segments.All(IsName) ? segments : null;
    }

    private static bool IsName(string segment) =>
        segment.Length is > 0 and <= MaxSegmentLength && segment.All(c => char.IsLetterOrDigit(c) || c is '_' or '-');
}
