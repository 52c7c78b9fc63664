using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using IotGateway.Observability;
using Microsoft.AspNetCore.Mvc.ModelBinding;

namespace IotGateway.Api;

// Times in the API. Out: UTC, millisecond precision, 'Z' (2026-11-24T08:53:00.123Z), the form JavaScript's
// Date.toISOString writes and every tool reads. In: the same, any ISO 8601 time with an offset (one whose '+' became a
// space in an unencoded URL too), or Unix time: below 100,000,000,000 it is seconds (until the year 5138), from there on
// milliseconds (from March 1973). Times are compared as they are shown, to the millisecond: a parameter with a finer
// part counts from the next millisecond (a reading shown at .123 is before .1231 and not before .123).
public static partial class ApiTime
{
    public const string Format = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";

    public const string Accepted = "ISO 8601 with Z or an offset (2026-11-24T08:53:00Z), or Unix seconds or milliseconds";

    private const long FirstMilliseconds = 100_000_000_000;

    public static string ToText(DateTimeOffset time) => time.UtcDateTime.ToString(Format, CultureInfo.InvariantCulture);

    public static bool TryParse(string? text, out DateTimeOffset time)
    {
        time = default;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        if (UnixTime().IsMatch(text))
        {
            if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }

            try
            {
                time = number < FirstMilliseconds ? DateTimeOffset.FromUnixTimeSeconds(number) : DateTimeOffset.FromUnixTimeMilliseconds(number);
                return true;
            }
            catch (ArgumentOutOfRangeException)
            {
                return false;
            }
        }

        // An unencoded '+' in a query string arrives as a space: "…T08:53:00 01:00" meant "…T08:53:00+01:00".
        text = SpaceForPlus().Replace(text, "$1+$2");
        if (!IsoTime().IsMatch(text) || !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out time))
        {
            return false;
        }

        // Rounding up to the next millisecond must stay within DateTimeOffset, and ranges computed back from a time
        // (an aggregate's default start, 100 intervals of up to 366 days) must too: times before 1970 are refused.
        if (time < DateTimeOffset.UnixEpoch || time.UtcTicks > DateTimeOffset.MaxValue.UtcTicks - TimeSpan.TicksPerMillisecond)
        {
            return false;
        }

        var finer = time.UtcTicks % TimeSpan.TicksPerMillisecond;
        time = finer == 0 ? time : time.AddTicks(TimeSpan.TicksPerMillisecond - finer);
        return true;
    }

    [GeneratedRegex("^[0-9]{1,19}$")]
    private static partial Regex UnixTime();

    [GeneratedRegex(@"^(.*:[0-9]{2}(?:\.[0-9]+)?) ([0-9]{2}(?::?[0-9]{2})?)$")]
    private static partial Regex SpaceForPlus();

    // A date, optionally a time, optionally an offset; no other shapes (11/24/2026 is ambiguous).
    [GeneratedRegex(@"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,7})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?)?$")]
    private static partial Regex IsoTime();
}

// Every DateTimeOffset the API writes, and any it reads from a body.
public sealed class ApiTimeJsonConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.String when ApiTime.TryParse(reader.GetString(), out var time) => time,
            JsonTokenType.Number when ApiTime.TryParse(reader.GetInt64().ToString(CultureInfo.InvariantCulture), out var time) => time,
            _ => throw new JsonException($"Not a time: use {ApiTime.Accepted}."),
        };

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
        writer.WriteStringValue(ApiTime.ToText(value));
}

// Every DateTimeOffset query or route value (from, to, …): a value that is not a time is a 400 naming the parameter.
public sealed class ApiTimeModelBinderProvider : IModelBinderProvider
{
    public IModelBinder? GetBinder(ModelBinderProviderContext context) =>
        (Nullable.GetUnderlyingType(context.Metadata.ModelType) ?? context.Metadata.ModelType) == typeof(DateTimeOffset) ? new Binder() : null;

    private sealed class Binder : IModelBinder
    {
        public Task BindModelAsync(ModelBindingContext bindingContext)
        {
            var value = bindingContext.ValueProvider.GetValue(bindingContext.ModelName);
            if (value == ValueProviderResult.None || string.IsNullOrWhiteSpace(value.FirstValue))
            {
                return Task.CompletedTask;
            }

            bindingContext.ModelState.SetModelValue(bindingContext.ModelName, value);
            if (ApiTime.TryParse(value.FirstValue, out var time))
            {
                bindingContext.Result = ModelBindingResult.Success(time);
            }
            else
            {
                bindingContext.ModelState.TryAddModelError(bindingContext.ModelName,
                    $"{bindingContext.ModelName} is not a time: '{LogText.Printable(value.FirstValue, 64)}'. Use {ApiTime.Accepted}.");
            }

            return Task.CompletedTask;
        }
    }
}
