using System.ComponentModel.DataAnnotations;
using System.Text;
using IotGateway.Mqtt;
using IotGateway.Security;
using IotGateway.Telemetry;

namespace IotGateway.Devices;

/// <summary>A device and its presence.</summary>
/// <param name="Id">The device id (its topic level).</param>
/// <param name="SignedIn">True when its last presence message was SIGN_IN; false after SIGN_OUT or its Last Will.</param>
/// <param name="Transport">How the device last signed in: "mqtt" (through the broker) or "tcp" (on the gateway's TCP listener).</param>
/// <param name="LastSeen">When a message from the device itself last arrived.</param>
/// <param name="FirstSeen">When the gateway first heard of it.</param>
/// <param name="SignedInAt">When it last signed in.</param>
/// <param name="SignedOutAt">When it last signed out.</param>
/// <param name="TelemetryCount">Readings stored for it.</param>
/// <param name="PendingCommands">Commands not answered yet (Pending or Published).</param>
/// <param name="LatestReading">Its newest stored reading; null when none is stored.</param>
public sealed record DeviceView(
    string Id,
    bool SignedIn,
    string Transport,
    DateTimeOffset? LastSeen,
    DateTimeOffset FirstSeen,
    DateTimeOffset? SignedInAt,
    DateTimeOffset? SignedOutAt,
    long TelemetryCount,
    int PendingCommands,
    ReadingView? LatestReading);

[ApiController]
[Route("api/devices")]
[Tags("Devices")]
public sealed class DevicesController(GatewayDbContext db) : ControllerBase
{
    /// <summary>List devices with their presence and newest reading, ordered by id.</summary>
    /// <param name="signedIn">Only signed-in (true) or signed-out (false) devices.</param>
    /// <param name="search">Only devices whose id contains this text, ignoring ASCII case (at most 128 characters).</param>
    /// <param name="limit">Page size, 1 to 1000.</param>
    /// <param name="cursor">The nextCursor of the previous page.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">A page of devices.</response>
    /// <response code="400">Invalid search, limit or cursor.</response>
    [HttpGet]
    [ProducesResponseType<Page<DeviceView>>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    public async Task<IActionResult> List([FromQuery] bool? signedIn, [FromQuery, StringLength(DeviceIds.MaxLength)] string? search,
        [FromQuery, Range(1, Cursor.MaxLimit)] int limit = Cursor.DefaultLimit,
        [FromQuery] string? cursor = null, CancellationToken cancellationToken = default)
    {
        string? after = null;
        // A cursor is a device id this API returned: anything else (NUL, which PostgreSQL's text refuses) is not one.
        if (cursor is not null && (!Cursor.TryDecode(cursor, out after) || !DeviceIds.IsValid(after)))
        {
            ModelState.AddModelError(nameof(cursor), "cursor is not one this API returned.");
            return ValidationProblem(ModelState);
        }

        // No device id holds a control or format character, so a search for one would find nothing; NUL would fail
        // on PostgreSQL.
        if (search is not null && search.EnumerateRunes().Any(r =>
                Rune.GetUnicodeCategory(r) is System.Globalization.UnicodeCategory.Control or System.Globalization.UnicodeCategory.Format))
        {
            ModelState.AddModelError(nameof(search), "search must not hold control or format characters.");
            return ValidationProblem(ModelState);
        }

        var query = db.Devices.AsNoTracking();
        if (signedIn is { } s)
        {
            query = query.Where(d => d.SignedIn == s);
        }

        if (!string.IsNullOrEmpty(search))
        {
            // A scan of the devices table (no index serves "contains"): cheap for tens of thousands of devices. ASCII case
            // only: SQLite's lower() folds A–Z alone, and so does PostgreSQL's on the Id column's C collation, whatever
            // the database's locale (DeviceSearchTests).
            var lowered = string.Concat(search.Select(c => char.IsAsciiLetterUpper(c) ? char.ToLowerInvariant(c) : c));
            query = query.Where(d => d.Id.ToLower().Contains(lowered));
        }

        if (after is not null)
        {
            query = query.Where(d => string.Compare(d.Id, after) > 0);
        }

        var rows = await WithLatestReading(query.OrderBy(d => d.Id).Take(limit + 1)).ToListAsync(cancellationToken);
        var next = rows.Count > limit ? Cursor.Encode(rows[limit - 1].Device.Id) : null;
        return Ok(new Page<DeviceView>(rows.Take(limit).Select(r => ToView(r.Device, r.Latest)).ToList(), next));
    }

    /// <summary>Get one device: presence, last seen, stored readings, unanswered commands and its newest reading.</summary>
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
        var row = await WithLatestReading(db.Devices.AsNoTracking().Where(d => d.Id == deviceId)).FirstOrDefaultAsync(cancellationToken);
        return row is null ? this.UnknownDeviceProblem(deviceId) : Ok(ToView(row.Device, row.Latest));
    }

    /// <summary>Forget a device: its readings, its commands and its retained presence on the broker.</summary>
    /// <remarks>
    /// The retained SIGN_IN is cleared on the broker (an empty retained message on {Register}/{deviceId}), so no later
    /// session of the gateway learns of the device from it; then the device, its commands (open ones are not sent any
    /// more) and its readings are deleted, the readings in small transactions so ingest keeps going. Commands the
    /// broker already holds for the device's session still reach it. A device that keeps publishing is simply known
    /// again, as a new device, from its next message.
    /// </remarks>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="deletion">Does the work.</param>
    /// <param name="cancellationToken">Aborts the request before anything is deleted; once deleting has begun it finishes.</param>
    /// <response code="200">Forgotten; what was deleted.</response>
    /// <response code="400">Invalid device id.</response>
    /// <response code="404">The gateway has never seen this device.</response>
    /// <response code="503">The broker is not connected, so the retained presence cannot be cleared; nothing was deleted.</response>
    [Authorize(Policy = ApiKeyDefaults.OperatorPolicy)]
    [HttpDelete("{deviceId}")]
    [ProducesResponseType<ForgottenDevice>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status503ServiceUnavailable)]
    public async Task<IActionResult> Forget([DeviceId] string deviceId, [FromServices] DeviceDeletion deletion, CancellationToken cancellationToken)
    {
        try
        {
            var forgotten = await deletion.ForgetAsync(deviceId, cancellationToken);
            return forgotten is null ? this.UnknownDeviceProblem(deviceId) : Ok(forgotten);
        }
        catch (BrokerUnavailableException e)
        {
            return Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Broker not available",
                detail: $"{e.Message} Nothing was deleted: the device's retained SIGN_IN would make it known again. Retry when the gateway is connected.");
        }
    }

    // Each device with its newest reading in one query for the whole page: per device, MAX("Id") is one seek in the
    // (DeviceId, Id) index and the reading one rowid lookup. (FirstOrDefault in the projection is translated to
    // ROW_NUMBER() over every reading of every device instead.)
    private IQueryable<DeviceRow> WithLatestReading(IQueryable<Device> devices) =>
        devices.Select(d => new { Device = d, LatestId = db.Telemetry.Where(r => r.DeviceId == d.Id).Max(r => (long?)r.Id) })
            .LeftJoin(db.Telemetry, x => x.LatestId, r => (long?)r.Id, (x, r) => new DeviceRow(x.Device, r));

    private static DeviceView ToView(Device d, TelemetryReading? latest) =>
        new(d.Id, d.SignedIn, d.Transport, d.LastSeen, d.FirstSeen, d.SignedInAt, d.SignedOutAt, d.TelemetryCount, d.PendingCommands, latest?.ToView());

    private sealed record DeviceRow(Device Device, TelemetryReading? Latest);
}
