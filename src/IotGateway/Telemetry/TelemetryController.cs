using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using IotGateway.Api;
using IotGateway.Data;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace IotGateway.Telemetry;

/// <summary>A stored telemetry reading.</summary>
/// <param name="Id">Its position in the store (increases with arrival).</param>
/// <param name="DeviceId">The device that sent it.</param>
/// <param name="ReceivedAt">When the gateway received it.</param>
/// <param name="Topic">The topic it arrived on.</param>
/// <param name="Format">Json (payload is the document), Text (payload is a string) or Binary (payload is base64).</param>
/// <param name="Payload">The reading.</param>
/// <param name="MessageKey">The device's id for the reading, used to drop redeliveries.</param>
public sealed record ReadingView(long Id, string DeviceId, DateTimeOffset ReceivedAt, string Topic, PayloadFormat Format, JsonElement Payload, string? MessageKey);

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
    [HttpGet("api/devices/{deviceId}/telemetry")]
    [ProducesResponseType<Page<ReadingView>>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
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
        var next = rows.Count > limit ? Cursor.Encode(rows[limit - 1].Id) : null;
        return Ok(new Page<ReadingView>(rows.Take(limit).Select(ToView).ToList(), next));
    }

    private static ReadingView ToView(TelemetryReading r) => new(r.Id, r.DeviceId, r.ReceivedAt, r.Topic, r.Format,
        r.Format == PayloadFormat.Json ? Json.Parse(r.Payload)!.Value : JsonSerializer.SerializeToElement(r.Payload), r.MessageKey);
}
