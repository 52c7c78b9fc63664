using System.ComponentModel.DataAnnotations;
using IotGateway.Devices;

namespace IotGateway.Telemetry;

[ApiController]
[Tags("Telemetry")]
public sealed class TelemetryController(GatewayDbContext db) : ControllerBase
{
    /// <summary>A device's stored readings, newest first.</summary>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="from">Only readings received at or after this time (ISO 8601).</param>
    /// <param name="to">Only readings received before this time (ISO 8601).</param>
    /// <param name="limit">Page size, 1 to 1000.</param>
    /// <param name="cursor">The nextCursor of the previous page.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">A page of readings.</response>
    /// <response code="400">Invalid device id, time range, limit or cursor.</response>
    /// <response code="404">The gateway has never seen this device.</response>
    [HttpGet("api/devices/{deviceId}/telemetry")]
    [ProducesResponseType<Page<ReadingView>>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> List([DeviceId] string deviceId, [FromQuery] DateTimeOffset? from, [FromQuery] DateTimeOffset? to,
        [FromQuery, Range(1, Cursor.MaxLimit)] int limit = Cursor.DefaultLimit, [FromQuery] string? cursor = null,
        CancellationToken cancellationToken = default)
    {
        if (from is not null && to is not null && from > to)
        {
            ModelState.AddModelError(nameof(from), "from must not be later than to.");
        }

        long? before = null;
        if (cursor is not null)
        {
            if (Cursor.TryDecode(cursor, out long id))
            {
                before = id;
            }
            else
            {
                ModelState.AddModelError(nameof(cursor), "cursor is not one this API returned.");
            }
        }

        if (!ModelState.IsValid)
        {
            return ValidationProblem(ModelState);
        }

        var query = db.Telemetry.AsNoTracking().Where(r => r.DeviceId == deviceId);
        if (from is { } f)
        {
            query = query.Where(r => r.ReceivedAt >= f);
        }

        if (to is { } t)
        {
            query = query.Where(r => r.ReceivedAt < t);
        }

        if (before is { } b)
        {
            query = query.Where(r => r.Id < b);
        }

        var rows = await query.OrderByDescending(r => r.Id).Take(limit + 1).ToListAsync(cancellationToken);
        if (rows.Count == 0 && !await db.DeviceExistsAsync(deviceId, cancellationToken))
        {
            return this.UnknownDeviceProblem(deviceId);
        }

        var next = rows.Count > limit ? Cursor.Encode(rows[limit - 1].Id) : null;
        return Ok(new Page<ReadingView>(rows.Take(limit).Select(r => r.ToView()).ToList(), next));
    }

    /// <summary>A device's newest reading.</summary>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">The newest reading.</response>
    /// <response code="400">Invalid device id.</response>
    /// <response code="404">The gateway has never seen this device, or has no reading from it (the title says which).</response>
    [HttpGet("api/devices/{deviceId}/telemetry/latest")]
    [ProducesResponseType<ReadingView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> Latest([DeviceId] string deviceId, CancellationToken cancellationToken)
    {
        var latest = await db.Telemetry.AsNoTracking().Where(r => r.DeviceId == deviceId).OrderByDescending(r => r.Id).FirstOrDefaultAsync(cancellationToken);
        if (latest is not null)
        {
            return Ok(latest.ToView());
        }

        return await db.DeviceExistsAsync(deviceId, cancellationToken)
            ? Problem(statusCode: StatusCodes.Status404NotFound, title: "No readings", detail: $"No reading from device '{deviceId}' is stored.")
            : this.UnknownDeviceProblem(deviceId);
    }
}
