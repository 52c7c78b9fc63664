using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using IotGateway.Devices;
using IotGateway.Security;
using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.AspNetCore.RateLimiting;

namespace IotGateway.Commands;

/// <summary>One command for many devices: a list of ids, or every device that is signed in.</summary>
public sealed record BulkCommandRequest : CommandBody
{
    /// <summary>The devices; leave out to use the signedIn filter.</summary>
    /// <example>["sim-device-0001", "sim-device-0002"]</example>
    public IReadOnlyList<string>? DeviceIds { get; init; }

    /// <summary>true: every device signed in right now (when deviceIds is not given).</summary>
    /// <example>true</example>
    public bool? SignedIn { get; init; }
}

// The bulk route's body limit follows Commands:MaxBulkDevices (see RequestLimits.MaxBulkBodyBytes).
[AttributeUsage(AttributeTargets.Method)]
public sealed class BulkBodySizeLimitAttribute : Attribute, IAsyncResourceFilter
{
    public Task OnResourceExecutionAsync(ResourceExecutingContext context, ResourceExecutionDelegate next) =>
        BodySizeLimitAttribute.LimitAsync(context, next,
            RequestLimits.MaxBulkBodyBytes(context.HttpContext.RequestServices.GetRequiredService<IOptions<CommandOptions>>().Value.MaxBulkDevices));
}

/// <summary>The answer to a bulk request.</summary>
/// <param name="BatchId">Identifies the batch; GET /api/commands/bulk/{batchId} summarises it.</param>
/// <param name="Count">How many commands were queued, one per device.</param>
public sealed record BulkCommandAccepted(Guid BatchId, int Count);

/// <summary>Where the commands of a bulk request stand.</summary>
/// <param name="BatchId">The batch.</param>
/// <param name="Total">Commands in it.</param>
/// <param name="ByStatus">How many are in each status.</param>
public sealed record BulkCommandSummary(Guid BatchId, int Total, IReadOnlyDictionary<CommandStatus, int> ByStatus);

[ApiController]
[Route("api/commands/bulk")]
[Tags("Commands")]
public sealed class BulkCommandsController(GatewayDbContext db, CommandIntake intake, IOptions<CommandOptions> options) : ControllerBase
{
    /// <summary>Queue one command for each of many devices.</summary>
    /// <remarks>Give deviceIds, or signedIn: true for every device signed in now. Each device gets its own command, with its own id and lifecycle.</remarks>
    /// <param name="request">The command and the devices.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="202">Queued; Location points at the batch summary.</response>
    /// <response code="200">signedIn: true and no device is signed in: nothing queued (count 0, no batch summary).</response>
    /// <response code="400">Invalid body, device ids, neither deviceIds nor signedIn given, or more devices signed in than Commands:MaxBulkDevices.</response>
    /// <response code="404">Some of the devices were never seen.</response>
    /// <response code="413">The body is too large.</response>
    /// <response code="429">Too many command requests for this key; see Retry-After.</response>
    [Authorize(Policy = ApiKeyDefaults.OperatorPolicy)]
    [EnableRateLimiting(SecuritySetup.CommandRateLimit)]
    [HttpPost]
    [Consumes("application/json")]
    [BulkBodySizeLimit]
    [ProducesResponseType<BulkCommandAccepted>(StatusCodes.Status202Accepted)]
    [ProducesResponseType<BulkCommandAccepted>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status413PayloadTooLarge)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status429TooManyRequests)]
    public async Task<IActionResult> Queue([FromBody] BulkCommandRequest request, CancellationToken cancellationToken)
    {
        var limits = options.Value;
        if (request.TtlProblem(limits) is { } ttlProblem)
        {
            ModelState.AddModelError(nameof(request.TtlSeconds), ttlProblem);
        }

        if (request.PayloadProblem() is { } payloadProblem)
        {
            ModelState.AddModelError(nameof(request.Payload), payloadProblem);
        }

        if (request.DeviceIds is null && request.SignedIn != true)
        {
            ModelState.AddModelError(nameof(request.DeviceIds), "Give deviceIds, or signedIn: true to address every signed-in device.");
        }

        if (request.DeviceIds is { } ids)
        {
            if (ids.Count == 0 || ids.Count > limits.MaxBulkDevices)
            {
                ModelState.AddModelError(nameof(request.DeviceIds), $"deviceIds must name 1 to {limits.MaxBulkDevices} devices (Commands:MaxBulkDevices).");
            }

            foreach (var (index, error) in ids.Select((id, i) => (i, DeviceIds.Validate(id))).Where(x => x.Item2 is not null).Take(10))
            {
                ModelState.AddModelError($"deviceIds[{index}]", error!);
            }
        }

        if (!ModelState.IsValid)
        {
            return ValidationProblem(ModelState);
        }

        List<string> devices;
        if (request.DeviceIds is { } requested)
        {
            var distinct = requested.Distinct(StringComparer.Ordinal).ToList();
            devices = await db.Devices.AsNoTracking().Where(d => distinct.Contains(d.Id)).Select(d => d.Id).ToListAsync(cancellationToken);
            if (devices.Count != distinct.Count)
            {
                var unknown = distinct.Except(devices, StringComparer.Ordinal).Take(10);
                return Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown devices",
                    detail: $"{distinct.Count - devices.Count} of the devices were never seen by the gateway, e.g. {string.Join(", ", unknown)}.");
            }
        }
        else
        {
            // One more than allowed: a fleet larger than the limit is refused, never silently cut short.
            devices = await db.Devices.AsNoTracking().Where(d => d.SignedIn).OrderBy(d => d.Id).Select(d => d.Id)
                .Take(limits.MaxBulkDevices + 1).ToListAsync(cancellationToken);
            if (devices.Count > limits.MaxBulkDevices)
            {
                ModelState.AddModelError(nameof(request.SignedIn),
                    $"More than {limits.MaxBulkDevices} devices are signed in (Commands:MaxBulkDevices): address them by deviceIds in parts, or raise the limit.");
                return ValidationProblem(ModelState);
            }
        }

        var batchId = Guid.CreateVersion7();
        if (devices.Count == 0)
        {
            // No device is signed in: nothing queued, and no batch to point at.
            return Ok(new BulkCommandAccepted(batchId, 0));
        }

        var queued = await intake.QueueManyAsync(devices, request.ToSpec(HttpContext.User.Identity?.Name), batchId, cancellationToken);
        return AcceptedAtAction(nameof(Summary), new { batchId }, new BulkCommandAccepted(batchId, queued.Count));
    }

    /// <summary>How the commands of a bulk request stand, counted by status.</summary>
    /// <param name="batchId">The batchId a bulk request returned.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">The counts.</response>
    /// <response code="404">No such batch.</response>
    [HttpGet("{batchId:guid}")]
    [ProducesResponseType<BulkCommandSummary>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> Summary(Guid batchId, CancellationToken cancellationToken)
    {
        var counts = await db.Commands.AsNoTracking().Where(c => c.BatchId == batchId)
            .GroupBy(c => c.Status).Select(g => new { Status = g.Key, Count = g.Count() })
            .ToDictionaryAsync(x => x.Status, x => x.Count, cancellationToken);
        return counts.Count == 0
            ? Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown batch", detail: $"There is no bulk request {batchId}.")
            : Ok(new BulkCommandSummary(batchId, counts.Values.Sum(), counts));
    }
}
