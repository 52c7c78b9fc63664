using System.ComponentModel.DataAnnotations;
using IotGateway.Devices;
using IotGateway.Security;
using Microsoft.AspNetCore.RateLimiting;

namespace IotGateway.Commands;

[ApiController]
[Tags("Commands")]
public sealed class CommandsController(GatewayDbContext db, ICommandStore store, CommandIntake intake, CommandCompletion completion,
    CommandTransitions transitions, IOptions<CommandOptions> options, TimeProvider time) : ControllerBase
{
    public const double MaxWaitSeconds = 60;

    /// <summary>Queue a command for a device.</summary>
    /// <remarks>
    /// The command is stored as Pending and published to {CommandRequest}/{deviceId} at QoS 2 as
    /// {"uuid":…,"command":…,"payload":…}. A device that is offline receives it when it reconnects with its
    /// persistent session; the answer on {CommandResponse}/{deviceId} makes it Completed (or Failed for ERROR… results).
    ///
    /// With waitSeconds, the request also waits for the answer, like GET /api/commands/{id}?waitSeconds: it returns
    /// 200 with the finished command (Completed, Failed, Expired or Cancelled) the moment it finishes, or 202 with
    /// the command as it is (Pending or Published) when waitSeconds have passed. The command stays queued either way.
    /// </remarks>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="request">The command.</param>
    /// <param name="waitSeconds">Wait up to this long (0 to 60 s) for the command to finish and answer with it. Omitted: answer at once with its id and status.</param>
    /// <param name="cancellationToken">Aborts the request (a command already queued stays queued).</param>
    /// <response code="200">With waitSeconds: the command finished in time; the whole command, as GET /api/commands/{id} returns it. Location points at it.</response>
    /// <response code="202">Queued; Location points at the command. Without waitSeconds the body is its id, device and status; with waitSeconds it is the whole command, still open.</response>
    /// <response code="400">Invalid device id, body or waitSeconds.</response>
    /// <response code="404">The gateway has never seen this device.</response>
    /// <response code="413">The body is too large.</response>
    /// <response code="429">Too many command requests for this key; see Retry-After.</response>
    [Authorize(Policy = ApiKeyDefaults.OperatorPolicy)]
    [EnableRateLimiting(SecuritySetup.CommandRateLimit)]
    [HttpPost("api/devices/{deviceId}/commands")]
    [Consumes("application/json")]
    [BodySizeLimit(RequestLimits.MaxCommandBodyBytes)]
    [ProducesResponseType<CommandView>(StatusCodes.Status200OK)]
    [ProducesResponseType<QueuedCommand>(StatusCodes.Status202Accepted)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status413PayloadTooLarge)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status429TooManyRequests)]
    public async Task<IActionResult> Queue([DeviceId] string deviceId, [FromBody] QueueCommandRequest request,
        [FromQuery, Range(0.0, MaxWaitSeconds)] double? waitSeconds = null, CancellationToken cancellationToken = default)
    {
        if (request.TtlProblem(options.Value) is { } ttlProblem)
        {
            ModelState.AddModelError(nameof(request.TtlSeconds), ttlProblem);
        }

        if (request.PayloadProblem() is { } payloadProblem)
        {
            ModelState.AddModelError(nameof(request.Payload), payloadProblem);
        }

        if (!ModelState.IsValid)
        {
            return ValidationProblem(ModelState);
        }

        if (!await intake.DeviceExistsAsync(deviceId, cancellationToken))
        {
            return Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown device",
                detail: $"The gateway has never seen device '{deviceId}'. A device becomes known when it signs in or sends data.");
        }

        if (waitSeconds is not { } wait)
        {
            var command = await intake.QueueAsync(deviceId, request.ToSpec(RequestedBy()), cancellationToken);
            return AcceptedAtAction(nameof(Get), new { id = command.Id }, new QueuedCommand(command.Id, command.DeviceId, command.Status));
        }

        // Registered before the command exists, so no finish (here or on another instance) can come before the wait.
        var id = intake.NewCommandId();
        var deadline = time.GetUtcNow() + TimeSpan.FromSeconds(wait);
        var waiting = completion.Register(id);
        try
        {
            await intake.QueueAsync(deviceId, request.ToSpec(RequestedBy()), id, cancellationToken);
        }
        catch
        {
            waiting.Dispose();
            throw;
        }

        var finished = await WaitUntilFinishedAsync(id, deadline, waiting, cancellationToken);
        if (finished is null)
        {
            return CommandNotFound(id);
        }

        if (Command.IsOpen(finished.Status))
        {
            return AcceptedAtAction(nameof(Get), new { id }, finished.ToView());
        }

        Response.Headers.Location = Url.Action(nameof(Get), null, new { id }, Request.Scheme, Request.Host.ToUriComponent());
        return Ok(finished.ToView());
    }

    /// <summary>Get a command with its status, result and timestamps; optionally wait for it to finish.</summary>
    /// <remarks>
    /// With waitSeconds, a command that is still Pending or Published is returned as soon as it finishes (Completed,
    /// Failed, Expired or Cancelled), or as it is when waitSeconds have passed: queue a command, then wait for its
    /// answer in one request instead of polling.
    /// </remarks>
    /// <param name="id">The command id.</param>
    /// <param name="waitSeconds">Wait up to this long (0 to 60 s) for an open command to finish. Default 0: answer at once.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">The command.</response>
    /// <response code="400">waitSeconds is out of range.</response>
    /// <response code="404">No such command.</response>
    [HttpGet("api/commands/{id:guid}")]
    [ProducesResponseType<CommandView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> Get(Guid id, [FromQuery, Range(0.0, MaxWaitSeconds)] double waitSeconds = 0, CancellationToken cancellationToken = default)
    {
        var command = waitSeconds > 0
            ? await WaitUntilFinishedAsync(id, time.GetUtcNow() + TimeSpan.FromSeconds(waitSeconds), registered: null, cancellationToken)
            : await db.FindCommandAsync(id, cancellationToken);
        return command is null ? CommandNotFound(id) : Ok(command.ToView());
    }

    // The command once it has finished, or as it is at the deadline; null when there is no such command. Whoever
    // finishes a command signals it after the commit, here or from another instance (CommandCompletion); a waiter
    // registered before reading cannot miss that. `registered` is a registration made before the command existed:
    // then there is nothing to read before the first wait.
    private async Task<Command?> WaitUntilFinishedAsync(Guid id, DateTimeOffset deadline, CommandCompletion.Registration? registered,
        CancellationToken cancellationToken)
    {
        var waiting = registered;
        Command? command = null;
        try
        {
            while (true)
            {
                if (waiting is null)
                {
                    waiting = completion.Register(id);
                    command = await db.FindCommandAsync(id, cancellationToken);
                    if (command is null || !Command.IsOpen(command.Status) || deadline <= time.GetUtcNow())
                    {
                        return command;
                    }
                }

                var left = deadline - time.GetUtcNow();
                try
                {
                    // Woken when it finishes here or on another instance, or when signals may have been missed: read again.
                    await waiting.Finished.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, time, cancellationToken);
                }
                catch (TimeoutException)
                {
                    // Still open: the command as it is.
                    return await db.FindCommandAsync(id, cancellationToken) ?? command;
                }

                waiting.Dispose();
                waiting = null;
            }
        }
        finally
        {
            waiting?.Dispose();
        }
    }

    /// <summary>Cancel a command that has not been answered.</summary>
    /// <remarks>
    /// A Pending command will not be sent. A Published one is already with the broker: the device may still run it,
    /// but its answer is then ignored.
    /// </remarks>
    /// <param name="id">The command id.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">Cancelled; the command as it is now.</response>
    /// <response code="404">No such command.</response>
    /// <response code="409">The command is already finished (Completed, Failed, Expired or Cancelled).</response>
    /// <response code="429">Too many command requests for this key; see Retry-After.</response>
    [Authorize(Policy = ApiKeyDefaults.OperatorPolicy)]
    [EnableRateLimiting(SecuritySetup.CommandRateLimit)]
    [HttpDelete("api/commands/{id:guid}")]
    [ProducesResponseType<CommandView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status409Conflict)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status429TooManyRequests)]
    public async Task<IActionResult> Cancel(Guid id, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var outcome = await store.CancelAsync(id, RequestedBy(), now, cancellationToken);
        if (outcome.Result == CancelResult.NotFound)
        {
            return CommandNotFound(id);
        }

        if (outcome.Result == CancelResult.AlreadyFinished)
        {
            return Problem(statusCode: StatusCodes.Status409Conflict, title: "Command already finished",
                detail: $"Command {id} is {outcome.Status} and can no longer be cancelled.");
        }

        // Committed: lanes, waiters (on every instance), the metric and live clients learn of it even if this request is
        // aborted below.
        transitions.Announce(CommandStatus.Cancelled, [new CommandChanged(id, outcome.DeviceId!)], now);
        var command = await db.FindCommandAsync(id, CancellationToken.None);
        return command is null ? CommandNotFound(id) : Ok(command.ToView());
    }

    /// <summary>List a device's commands, newest first.</summary>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="status">Only commands with this status.</param>
    /// <param name="limit">Page size, 1 to 1000.</param>
    /// <param name="cursor">The nextCursor of the previous page.</param>
    /// <param name="cancellationToken">Aborts the request.</param>
    /// <response code="200">A page of commands.</response>
    /// <response code="400">Invalid device id, status, limit or cursor.</response>
    /// <response code="404">The gateway has never seen this device.</response>
    [HttpGet("api/devices/{deviceId}/commands")]
    [ProducesResponseType<Page<CommandView>>(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> ListForDevice([DeviceId] string deviceId, [FromQuery] CommandStatus? status,
        [FromQuery, Range(1, Cursor.MaxLimit)] int limit = Cursor.DefaultLimit, [FromQuery] string? cursor = null,
        CancellationToken cancellationToken = default)
    {
        long? after = null;
        if (cursor is not null)
        {
            if (!Cursor.TryDecode(cursor, out long sequence))
            {
                ModelState.AddModelError(nameof(cursor), "cursor is not one this API returned.");
                return ValidationProblem(ModelState);
            }

            after = sequence;
        }

        var query = db.Commands.AsNoTracking().Where(c => c.DeviceId == deviceId);
        if (status is { } s)
        {
            query = query.Where(c => c.Status == s);
        }

        if (after is { } a)
        {
            query = query.Where(c => c.Sequence < a);
        }

        var rows = await query.OrderByDescending(c => c.Sequence).Take(limit + 1).ToListAsync(cancellationToken);
        if (rows.Count == 0 && !await db.DeviceExistsAsync(deviceId, cancellationToken))
        {
            return this.UnknownDeviceProblem(deviceId);
        }

        var next = rows.Count > limit ? Cursor.Encode(rows[limit - 1].Sequence) : null;
        return Ok(new Page<CommandView>(rows.Take(limit).Select(c => c.ToView()).ToList(), next));
    }

    private string? RequestedBy() => HttpContext.User.Identity?.Name;

    private ObjectResult CommandNotFound(Guid id) =>
        Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown command", detail: $"There is no command {id}.");
}
