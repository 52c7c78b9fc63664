using System.Buffers;
using System.IO.Pipelines;
using IotGateway.Devices;
using IotGateway.Security;
using Microsoft.AspNetCore.Http.Features;

namespace IotGateway.Events;

/// <summary>A token that opens the event stream from a browser, where EventSource cannot send the X-API-Key header.</summary>
/// <param name="Token">Pass as ?access_token=… to GET /api/events.</param>
/// <param name="ExpiresAt">Until when it opens a stream (Events:TokenLifetimeSeconds after it was issued); a stream opened with it stays open.</param>
/// <param name="Url">The stream's URL with the token, ready for new EventSource(url).</param>
public sealed record EventStreamToken(string Token, DateTimeOffset ExpiresAt, string Url);

[ApiController]
[Tags("Events")]
public sealed class EventsController(EventHub hub, EventTokens tokens, IOptions<EventOptions> options, IHostApplicationLifetime lifetime,
    TimeProvider time) : ControllerBase
{
    private static readonly TimeSpan DropNoticeTimeout = TimeSpan.FromSeconds(1);

    private const string StreamExample = """
        : connected
        retry: 5000

        data: {"type":"presence","deviceId":"sensor-1","signedIn":true,"at":"2026-11-25T10:15:02.123Z"}

        data: {"type":"reading","deviceId":"sensor-1","receivedAt":"2026-11-25T10:15:03.501Z","topic":"iot/data/sensor-1","format":"Json","payload":{"temp":21.5,"sensors":{"humidity":40},"messageId":"r-17"},"messageKey":"r-17"}

        data: {"type":"command","deviceId":"sensor-1","commandId":"01937a4e-5f7c-7d21-9c55-0a4b3c2d1e0f","status":"Completed","at":"2026-11-25T10:15:04.000Z","result":"PONG"}

        : heartbeat

        """;

    /// <summary>Live events as Server-Sent Events: presence changes, stored readings and command transitions.</summary>
    /// <remarks>
    /// Each event is one `data:` line holding a JSON object with its `type` and `deviceId`, sent after the change is
    /// committed:
    ///
    ///     data: {"type":"presence","deviceId":"sensor-1","signedIn":true,"at":"2026-11-25T10:15:02.123Z"}
    ///     data: {"type":"reading","deviceId":"sensor-1","receivedAt":"2026-11-25T10:15:03.501Z","topic":"iot/data/sensor-1","format":"Json","payload":{"temp":21.5,"sensors":{"humidity":40}},"messageKey":"r-17"}
    ///     data: {"type":"command","deviceId":"sensor-1","commandId":"01937a4e-5f7c-7d21-9c55-0a4b3c2d1e0f","status":"Completed","at":"2026-11-25T10:15:04.000Z","result":"PONG"}
    ///
    /// Command statuses are the API's (Pending, Published, Completed, Failed, Expired, Cancelled); Completed and Failed
    /// carry the device's result. A comment line (`: heartbeat`) every Events:HeartbeatSeconds keeps proxies from
    /// closing a quiet stream. A client that falls Events:ClientBuffer events behind is dropped rather than slowing the
    /// gateway: its stream ends with `data: {"type":"dropped","reason":"…"}` when it still reads, and EventSource
    /// reconnects by itself (the events in between are missed; read them from the REST routes).
    ///
    /// Authenticate with the X-API-Key header, or from a browser with ?access_token= from POST /api/events/tokens.
    /// </remarks>
    /// <param name="deviceId">Only this device's events (any valid id, also one not seen yet). Default: every device.</param>
    /// <param name="accessToken">A token from POST /api/events/tokens, for clients that cannot send the X-API-Key header.</param>
    /// <param name="cancellationToken">Ends the stream.</param>
    /// <response code="200">The stream (text/event-stream), open until the client leaves.</response>
    /// <response code="400">Invalid device id.</response>
    /// <response code="401">No API key and no valid access token.</response>
    [HttpGet("api/events")]
    [Authorize(AuthenticationSchemes = EventTokenDefaults.Schemes, Roles = $"{nameof(ApiRole.Reader)},{nameof(ApiRole.Operator)}")]
    [TextResponse("text/event-stream", StreamExample)]
    [ProducesResponseType(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    public async Task<IActionResult> Stream([FromQuery] string? deviceId,
        [FromQuery(Name = EventTokenDefaults.QueryParameter)] string? accessToken, CancellationToken cancellationToken)
    {
        _ = accessToken; // read by EventTokenAuthenticationHandler; a parameter here so Swagger lists it
        if (deviceId is not null && DeviceIds.Validate(deviceId) is { } problem)
        {
            ModelState.AddModelError(nameof(deviceId), problem);
            return ValidationProblem(ModelState);
        }

        Response.ContentType = "text/event-stream";
        Response.Headers.CacheControl = "no-cache";
        Response.Headers["X-Accel-Buffering"] = "no"; // nginx: pass each event on at once
        HttpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        using var subscription = hub.Subscribe(deviceId, $"{User.Identity?.Name} ({HttpContext.Connection.RemoteIpAddress})");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, subscription.DroppedToken, lifetime.ApplicationStopping);
        var body = Response.BodyWriter;
        try
        {
            body.Write(": connected\nretry: 5000\n\n"u8);
            await body.FlushAsync(stop.Token);
            await RelayAsync(subscription, body, stop.Token);
        }
        catch (OperationCanceledException)
        {
            // The client left, the gateway is stopping, or the client was dropped (below).
        }

        if (subscription.DropReason is { } reason && !cancellationToken.IsCancellationRequested)
        {
            await TellDroppedAsync(body, ServerEvent.Dropped(deviceId, reason));
        }

        return new EmptyResult();
    }

    /// <summary>Get a short-lived token that opens the event stream from a browser.</summary>
    /// <remarks>
    /// EventSource cannot send headers, and an API key must not travel in a URL (proxies and access logs keep URLs).
    /// A page that holds a key asks for a token here and opens the stream with it:
    ///
    ///     const { url } = await (await fetch("/api/events/tokens", { method: "POST", headers: { "X-API-Key": key } })).json();
    ///     const events = new EventSource(url);
    ///     events.onmessage = e => console.log(JSON.parse(e.data));
    ///
    /// The token opens streams until it expires (Events:TokenLifetimeSeconds, 60 s by default), with the role of the
    /// key that asked for it, and nothing else; a stream it opened stays open. When EventSource reconnects after the
    /// token has expired it gets 401: ask for a new token.
    /// </remarks>
    /// <response code="200">The token.</response>
    [HttpPost("api/events/tokens")]
    [ProducesResponseType<EventStreamToken>(StatusCodes.Status200OK)]
    public IActionResult IssueToken()
    {
        var identity = new ApiKeyIdentity(User.Identity?.Name ?? "unknown",
            User.IsInRole(nameof(ApiRole.Operator)) ? ApiRole.Operator : ApiRole.Reader);
        var (token, expiresAt) = tokens.Issue(identity);
        return Ok(new EventStreamToken(token, expiresAt, $"{Request.PathBase}/api/events?{EventTokenDefaults.QueryParameter}={token}"));
    }

    // Writes what has arrived, flushes, then waits for more or for the next heartbeat.
    private async Task RelayAsync(EventSubscription subscription, PipeWriter body, CancellationToken stop)
    {
        var heartbeat = TimeSpan.FromSeconds(options.Value.HeartbeatSeconds);
        var events = subscription.Events;
        Task<bool>? arriving = null;
        while (true)
        {
            var wrote = false;
            while (events.TryRead(out var e))
            {
                Write(body, e);
                wrote = true;
            }

            if (wrote && !await FlushAsync(body, stop))
            {
                return;
            }

            arriving ??= events.WaitToReadAsync(stop).AsTask();
            try
            {
                if (!await arriving.WaitAsync(heartbeat, time, stop))
                {
                    return; // completed: dropped
                }

                arriving = null;
            }
            catch (TimeoutException)
            {
                body.Write(": heartbeat\n\n"u8);
                if (!await FlushAsync(body, stop))
                {
                    return;
                }
            }
        }
    }

    // The reason, if the client still takes it within a second; otherwise the connection is cut.
    private async Task TellDroppedAsync(PipeWriter body, ServerEvent dropped)
    {
        using var brief = new CancellationTokenSource(DropNoticeTimeout);
        try
        {
            Write(body, dropped);
            if (await FlushAsync(body, brief.Token))
            {
                return;
            }
        }
        catch (OperationCanceledException)
        {
        }

        HttpContext.Abort();
    }

    // False when the client has gone or the flush was cancelled.
    private static async Task<bool> FlushAsync(PipeWriter body, CancellationToken stop)
    {
        var result = await body.FlushAsync(stop);
        return !result.IsCompleted && !result.IsCanceled;
    }

    private static void Write(PipeWriter body, ServerEvent e)
    {
        body.Write("data: "u8);
        body.Write(e.Data);
        body.Write("\n\n"u8);
    }
}
