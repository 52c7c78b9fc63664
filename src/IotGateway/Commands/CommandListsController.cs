using System.ComponentModel.DataAnnotations;
using IotGateway.Devices;
using IotGateway.Security;
using Microsoft.AspNetCore.RateLimiting;

namespace IotGateway.Commands;

/// <summary>What cancelling a bulk request did.</summary>
/// <param name="BatchId">The batch.</param>
/// <param name="Cancelled">Commands this request cancelled (those still Pending or Published).</param>
/// <param name="Total">Commands in the batch.</param>
/// <param name="ByStatus">How many are in each status now.</param>
public sealed record BulkCancelled(Guid BatchId, int Cancelled, int Total, IReadOnlyDictionary<CommandStatus, int> ByStatus);

// The command routes across devices: the whole list with filters, a batch's commands, cancelling a batch.
[ApiController]
[Tags("Commands")]
public sealed class CommandListsController(GatewayDbContext db, ICommandStore store, CommandTransitions transitions, TimeProvider time)
    : ControllerBase
{
    /// <summary>List commands across devices, newest first, with filters.</summary>
    /// <remarks>GET /api/commands?status=Pending&amp;deviceId=sensor-1&amp;from=2026-11-25T00:00:00Z&amp;limit=50. Filters combine (and).</remarks>
    /// <param name="status">Only commands with this status.</param>
    /// <param name="deviceId">Only this device's commands.</param>
    /// <param name="batchId">Only the commands of this bulk request.</param>
    /// <param name="from">Only commands queued at or after this time (ISO 8601).</param>
    /// <param name="to">Only commands queued before this time (ISO 8601).</param>
    /// <param name="limit">Page size, 1 to 1000.</param>
    /// <param name="cursor">The nextCursor of the previous page.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">A page of commands.</response>
    /// <response code="400">Invalid status, device id, time range, limit or cursor.</response>
    [HttpGet("api/commands")]
    [ProducesResponseType<Page<CommandView>>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    public async Task<IActionResult> List([FromQuery] CommandStatus? status, [FromQuery] string? deviceId, [FromQuery] Guid? batchId,
        [FromQuery] DateTimeOffset? from, [FromQuery] DateTimeOffset? to, [FromQuery, Range(1, Cursor.MaxLimit)] int limit = Cursor.DefaultLimit,
        [FromQuery] string? cursor = null, CancellationToken cancellationToken = default)
    {
        if (deviceId is not null && DeviceIds.Validate(deviceId) is { } problem)
        {
            ModelState.AddModelError(nameof(deviceId), problem);
        }

        if (from is not null && to is not null && from > to)
        {
            ModelState.AddModelError(nameof(from), "from must not be later than to.");
        }

        long? before = null;
        if (cursor is not null)
        {
            if (Cursor.TryDecode(cursor, out long sequence))
            {
                before = sequence;
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

        var query = db.Commands.AsNoTracking();
        if (status is { } s)
        {
            query = query.Where(c => c.Status == s);
        }

        if (deviceId is not null)
        {
            query = query.Where(c => c.DeviceId == deviceId);
        }

        if (batchId is { } batch)
        {
            query = query.Where(c => c.BatchId == batch);
        }

        if (from is { } f)
        {
            query = query.Where(c => c.CreatedAt >= f);
        }

        if (to is { } t)
        {
            query = query.Where(c => c.CreatedAt < t);
        }

        if (before is { } b)
        {
            query = query.Where(c => c.Sequence < b);
        }

        var rows = await query.OrderByDescending(c => c.Sequence).Take(limit + 1).ToListAsync(cancellationToken);
        var next = rows.Count > limit ? Cursor.Encode(rows[limit - 1].Sequence) : null;
        return Ok(new Page<CommandView>(rows.Take(limit).Select(c => c.ToView()).ToList(), next));
    }

    /// <summary>The commands of a bulk request, one per device, in the order they were queued.</summary>
    /// <param name="batchId">The batchId a bulk request returned.</param>
    /// <param name="status">Only commands with this status (e.g. Failed, to see which devices answered with an error).</param>
    /// <param name="limit">Page size, 1 to 1000.</param>
    /// <param name="cursor">The nextCursor of the previous page.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">A page of the batch's commands.</response>
    /// <response code="400">Invalid status, limit or cursor.</response>
    /// <response code="404">No such batch.</response>
    [HttpGet("api/commands/bulk/{batchId:guid}/commands")]
    [ProducesResponseType<Page<CommandView>>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> ListBatch(Guid batchId, [FromQuery] CommandStatus? status,
        [FromQuery, Range(1, Cursor.MaxLimit)] int limit = Cursor.DefaultLimit, [FromQuery] string? cursor = null,
        CancellationToken cancellationToken = default)
    {
        long after = 0;
        if (cursor is not null && !Cursor.TryDecode(cursor, out after))
        {
            ModelState.AddModelError(nameof(cursor), "cursor is not one this API returned.");
            return ValidationProblem(ModelState);
        }

        var query = db.Commands.AsNoTracking().Where(c => c.BatchId == batchId && c.Sequence > after);
        if (status is { } s)
        {
            query = query.Where(c => c.Status == s);
        }

        var rows = await query.OrderBy(c => c.Sequence).Take(limit + 1).ToListAsync(cancellationToken);
        if (rows.Count == 0 && !await db.Commands.AnyAsync(c => c.BatchId == batchId, cancellationToken))
        {
            return BatchNotFound(batchId);
        }

        var next = rows.Count > limit ? Cursor.Encode(rows[limit - 1].Sequence) : null;
        return Ok(new Page<CommandView>(rows.Take(limit).Select(c => c.ToView()).ToList(), next));
    }

    /// <summary>Cancel every command of a bulk request that has not been answered.</summary>
    /// <remarks>
    /// As for one command: a Pending command will not be sent; a Published one is already with the broker, so its
    /// device may still run it (its answer is then ignored). Commands already finished stay as they are.
    /// </remarks>
    /// <param name="batchId">The batchId a bulk request returned.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">How many were cancelled, and the batch by status now.</response>
    /// <response code="404">No such batch.</response>
    /// <response code="429">Too many command requests for this key; see Retry-After.</response>
    [Authorize(Policy = ApiKeyDefaults.OperatorPolicy)]
    [EnableRateLimiting(SecuritySetup.CommandRateLimit)]
    [HttpDelete("api/commands/bulk/{batchId:guid}")]
    [ProducesResponseType<BulkCancelled>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status429TooManyRequests)]
    public async Task<IActionResult> CancelBatch(Guid batchId, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var cancelled = await store.CancelBatchAsync(batchId, HttpContext.User.Identity?.Name, now, cancellationToken);
        // Committed: lanes, waiters (on every instance), the metric and live clients learn of it even if this request is aborted.
        transitions.Announce(CommandStatus.Cancelled, cancelled, now);

        var counts = await db.Commands.AsNoTracking().Where(c => c.BatchId == batchId)
            .GroupBy(c => c.Status).Select(g => new { Status = g.Key, Count = g.Count() })
            .ToDictionaryAsync(x => x.Status, x => x.Count, CancellationToken.None);
        return counts.Count == 0 ? BatchNotFound(batchId) : Ok(new BulkCancelled(batchId, cancelled.Count, counts.Values.Sum(), counts));
    }

    private ObjectResult BatchNotFound(Guid batchId) =>
        Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown batch", detail: $"There is no bulk request {batchId}.");
}
