using System.ComponentModel.DataAnnotations;
using IotGateway.Api;
using IotGateway.Data;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace IotGateway.Devices;

/// <summary>A device and its presence.</summary>
/// <param name="Id">The device id (its topic level).</param>
/// <param name="SignedIn">True when its last presence message was SIGN_IN; false after SIGN_OUT or its Last Will.</param>
/// <param name="LastSeen">When a message from the device itself last arrived.</param>
/// <param name="FirstSeen">When the gateway first heard of it.</param>
/// <param name="SignedInAt">When it last signed in.</param>
/// <param name="SignedOutAt">When it last signed out.</param>
/// <param name="TelemetryCount">Readings stored for it.</param>
/// <param name="PendingCommands">Commands not answered yet (Pending or Published).</param>
public sealed record DeviceView(
    string Id,
    bool SignedIn,
    DateTimeOffset? LastSeen,
    DateTimeOffset FirstSeen,
    DateTimeOffset? SignedInAt,
    DateTimeOffset? SignedOutAt,
    long TelemetryCount,
    int PendingCommands);

[ApiController]
[Route("api/devices")]
[Tags("Devices")]
public sealed class DevicesController(GatewayDbContext db) : ControllerBase
{
    /// <summary>List devices with their presence, ordered by id.</summary>
    /// <param name="signedIn">Only signed-in (true) or signed-out (false) devices.</param>
    /// <param name="limit">Page size, 1 to 1000.</param>
    /// <param name="cursor">The nextCursor of the previous page.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">A page of devices.</response>
    /// <response code="400">Invalid limit or cursor.</response>
    [HttpGet]
    [ProducesResponseType<Page<DeviceView>>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    public async Task<IActionResult> List([FromQuery] bool? signedIn, [FromQuery, Range(1, Cursor.MaxLimit)] int limit = Cursor.DefaultLimit,
        [FromQuery] string? cursor = null, CancellationToken cancellationToken = default)
    {
        string? after = null;
        if (cursor is not null && !Cursor.TryDecode(cursor, out after))
        {
            ModelState.AddModelError(nameof(cursor), "cursor is not one this API returned.");
            return ValidationProblem(ModelState);
        }

        var query = db.Devices.AsNoTracking();
        if (signedIn is { } s)
        {
            query = query.Where(d => d.SignedIn == s);
        }

        if (after is not null)
        {
            query = query.Where(d => string.Compare(d.Id, after) > 0);
        }

        var rows = await query.OrderBy(d => d.Id).Take(limit + 1).Select(d => ToView(d)).ToListAsync(cancellationToken);
        var next = rows.Count > limit ? Cursor.Encode(rows[limit - 1].Id) : null;
        return Ok(new Page<DeviceView>(rows.Take(limit).ToList(), next));
    }

    /// <summary>Get one device: presence, last seen, stored readings and unanswered commands.</summary>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">The device.</response>
    /// <response code="400">Invalid device id.</response>
    /// <response code="404">The gateway has never seen this device.</response>
    [HttpGet("{deviceId}")]
    [ProducesResponseType<DeviceView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> Get([DeviceId] string deviceId, CancellationToken cancellationToken)
    {
        var device = await db.Devices.AsNoTracking().Where(d => d.Id == deviceId).Select(d => ToView(d)).FirstOrDefaultAsync(cancellationToken);
        return device is null
            ? Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown device", detail: $"The gateway has never seen device '{deviceId}'.")
            : Ok(device);
    }

    private static DeviceView ToView(Device d) =>
        new(d.Id, d.SignedIn, d.LastSeen, d.FirstSeen, d.SignedInAt, d.SignedOutAt, d.TelemetryCount, d.PendingCommands);
}
