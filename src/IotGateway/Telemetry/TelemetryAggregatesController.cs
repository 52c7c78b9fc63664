using IotGateway.Devices;

namespace IotGateway.Telemetry;

/// <summary>One interval of an aggregate.</summary>
/// <param name="Start">The interval's start (UTC): a multiple of the interval, so 1m, 1h and 1d intervals start on the minute, the hour and midnight.</param>
/// <param name="Count">Readings in the interval whose field is a number; min, max and avg are over these.</param>
/// <param name="Min">The smallest value; null when count is 0.</param>
/// <param name="Max">The largest value; null when count is 0.</param>
/// <param name="Avg">The mean; null when count is 0.</param>
/// <param name="Skipped">Readings in the interval without a numeric value at the field (missing, a string, not JSON, not finite).</param>
public sealed record AggregateItem(DateTimeOffset Start, long Count, double? Min, double? Max, double? Avg, long Skipped);

/// <summary>A numeric field of a device's readings, aggregated per interval.</summary>
/// <param name="Items">One item per interval that holds readings, oldest first; intervals without readings are left out.</param>
/// <param name="DeviceId">The device.</param>
/// <param name="Field">The field, as asked ("temp", "sensors.temp").</param>
/// <param name="IntervalSeconds">The interval's length in seconds.</param>
/// <param name="From">Readings received at or after this time count (the first interval may start earlier).</param>
/// <param name="To">Readings received before this time count.</param>
/// <param name="MaxIntervals">The most intervals a range may span; a longer range is refused with 400, never cut short.</param>
/// <param name="Skipped">Readings in the range without a numeric value at the field: the sum of the items' skipped.</param>
public sealed record AggregateAnswer(IReadOnlyList<AggregateItem> Items, string DeviceId, string Field, long IntervalSeconds, DateTimeOffset From,
    DateTimeOffset To, int MaxIntervals, long Skipped);

[ApiController]
[Tags("Telemetry")]
public sealed class TelemetryAggregatesController(GatewayDbContext db, TimeProvider time) : ControllerBase
{
    /// <summary>Count, min, max and average of a numeric field of a device's readings, per interval, computed by the database.</summary>
    /// <remarks>
    /// GET /api/devices/sensor-1/telemetry/aggregate?field=temp&amp;interval=1m&amp;from=2026-11-25T10:00:00Z&amp;to=2026-11-25T11:00:00Z
    ///
    /// Readings whose payload is not JSON, lacks the field, or holds a string, a boolean, an object or a number that is
    /// not finite (1e400) there are skipped: counted per interval (skipped) and in all (skipped at the top), never
    /// failing the request. The range may span at most 100,000 intervals (maxIntervals in the answer); a longer
    /// range answers 400 saying so: shorten it or use a longer interval.
    /// </remarks>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="field">A numeric field of the JSON payload: "temp", or nested, "sensors.temp" (names of letters, digits, '_' and '-').</param>
    /// <param name="interval">10s, 1m, 1h, 1d (a number with s, m, h or d), or whole seconds; at most 366 days.</param>
    /// <param name="from">Readings received at or after this time (ISO 8601). Default: 100 intervals before to.</param>
    /// <param name="to">Readings received before this time (ISO 8601). Default: now.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">The intervals that hold readings.</response>
    /// <response code="400">Invalid device id, field, interval or range, or a range of more than 100,000 intervals.</response>
    /// <response code="404">The gateway has never seen this device.</response>
    [HttpGet("api/devices/{deviceId}/telemetry/aggregate")]
    [ProducesResponseType<AggregateAnswer>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> Aggregate([DeviceId] string deviceId, [FromQuery] string? field, [FromQuery] string? interval,
        [FromQuery] DateTimeOffset? from, [FromQuery] DateTimeOffset? to, CancellationToken cancellationToken)
    {
        var path = AggregateRequest.ParseField(field);
        if (path is null)
        {
            ModelState.AddModelError(nameof(field), "field must name a JSON field: temp, or a nested one, sensors.temp (names of letters, digits, '_' and '-').");
        }

        if (!AggregateRequest.TryParseInterval(interval, out var seconds))
        {
            ModelState.AddModelError(nameof(interval), $"interval must be 10s, 1m, 1h, 1d (a number followed by s, m, h or d) or whole seconds, at most {AggregateRequest.MaxIntervalSeconds / 86400} days.");
        }

        if (!ModelState.IsValid)
        {
            return ValidationProblem(ModelState);
        }

        var intervalTicks = seconds * TimeSpan.TicksPerSecond;
        var end = to ?? time.GetUtcNow();
        var start = from ?? end - TimeSpan.FromTicks(intervalTicks * AggregateRequest.DefaultIntervals);
        if (start > end)
        {
            ModelState.AddModelError(nameof(from), "from must not be later than to.");
            return ValidationProblem(ModelState);
        }

        // Intervals the range touches, each whole: the first may start before from, the last end after to.
        var spanned = (end.UtcTicks + intervalTicks - 1) / intervalTicks - start.UtcTicks / intervalTicks;
        if (spanned > AggregateRequest.MaxIntervals)
        {
            ModelState.AddModelError(nameof(to), $"from..to spans {spanned:N0} intervals of {interval}; at most {AggregateRequest.MaxIntervals:N0} per request: shorten the range or use a longer interval.");
            return ValidationProblem(ModelState);
        }

        var rows = await TelemetrySql.AggregateAsync(db, deviceId, path!, start.UtcTicks, end.UtcTicks, intervalTicks, cancellationToken);
        if (rows.Count == 0 && !await db.DeviceExistsAsync(deviceId, cancellationToken))
        {
            return this.UnknownDeviceProblem(deviceId);
        }

        var items = rows.Select(r => new AggregateItem(new DateTimeOffset(r.Bucket, TimeSpan.Zero), r.Count, Finite(r.Min), Finite(r.Max), Finite(r.Avg), r.Skipped)).ToList();
        return Ok(new AggregateAnswer(items, deviceId, field!, seconds, start, end, AggregateRequest.MaxIntervals, items.Sum(i => i.Skipped)));
    }

    // Finite values only reach the database's aggregates, but a sum of huge ones can still overflow the average.
    private static double? Finite(double? value) => value is { } v && double.IsFinite(v) ? v : null;
}
