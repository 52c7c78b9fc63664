using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace IotGateway.Commands;

/// <summary>A command: its name, arguments and TTL (shared by the single and the bulk request).</summary>
public abstract record CommandBody
{
    /// <summary>The command name the device understands (the simulator: PING, SET_INTERVAL, GET_CONFIG, REBOOT).</summary>
    [Required(AllowEmptyStrings = false)]
    [StringLength(CommandLimits.MaxNameLength, MinimumLength = 1)]
    public string? Command { get; init; }

    /// <summary>Optional arguments, any JSON value, sent to the device as "payload" (SET_INTERVAL takes {"seconds": 30}).</summary>
    public JsonElement? Payload { get; init; }

    /// <summary>Seconds the command may wait for its device before it expires; the configured default when omitted.</summary>
    /// <example>300</example>
    [Range(1, int.MaxValue)]
    public int? TtlSeconds { get; init; }

    // The upper bound is configuration (Commands:MaxTtlSeconds), so attributes cannot express it.
    public string? TtlProblem(CommandOptions options) =>
        TtlSeconds > options.MaxTtlSeconds ? $"ttlSeconds must be at most {options.MaxTtlSeconds} (Commands:MaxTtlSeconds)." : null;

    // The limits of what the gateway returns and stores from devices apply to what operators send: a payload no
    // longer than RequestLimits.MaxCommandPayloadBytes, nested at most JsonText.MaxDepth, every string valid Unicode
    // without NUL (what PostgreSQL's jsonb and every JSON reader accept).
    // The name too: it goes to devices as a JSON string and is stored as text (PostgreSQL refuses NUL in text), so no
    // control or format characters (NUL, line breaks, bidi overrides, zero-width characters).
    public string? PayloadProblem()
    {
        if (Command is { } name && name.EnumerateRunes().Any(r => Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format))
        {
            return "command must not hold control or format characters (NUL, line breaks, bidi or zero-width characters).";
        }

        if (Payload is not { ValueKind: not JsonValueKind.Undefined and not JsonValueKind.Null } payload)
        {
            return null;
        }

        var text = System.Text.Encoding.UTF8.GetBytes(payload.GetRawText());
        if (text.Length > RequestLimits.MaxCommandPayloadBytes)
        {
            return $"payload must be at most {RequestLimits.MaxCommandPayloadBytes} bytes of JSON; it is {text.Length}.";
        }

        return JsonText.Repair(text) switch
        {
            null => $"payload must be nested at most {JsonText.MaxDepth} levels deep.",
            var repaired when !ReferenceEquals(repaired, text) => "payload must not hold a lone surrogate (\\ud800-\\udfff) or NUL (\\u0000) in a string.",
            _ => null,
        };
    }

    public CommandRequestSpec ToSpec(string? requestedBy) => new(Command!, Payload, TtlSeconds, requestedBy);
}

/// <summary>A command to queue for a device.</summary>
public sealed record QueueCommandRequest : CommandBody;

/// <summary>The answer to queueing a command.</summary>
/// <param name="Id">The command id, also sent to the device as "uuid".</param>
/// <param name="DeviceId">The device it is for.</param>
/// <param name="Status">Always Pending at first.</param>
public sealed record QueuedCommand(Guid Id, string DeviceId, CommandStatus Status);

/// <summary>A command and everything that happened to it.</summary>
/// <param name="Id">The command id, sent to the device as "uuid".</param>
/// <param name="DeviceId">The device it is for.</param>
/// <param name="Command">The command name.</param>
/// <param name="Payload">The arguments sent with it.</param>
/// <param name="Status">Pending, Published, Completed, Failed, Expired or Cancelled.</param>
/// <param name="Result">The device's commandResult as it sent it: "PONG" stays a string, an object stays an object.</param>
/// <param name="Response">The device's whole answer.</param>
/// <param name="TtlSeconds">How long it may wait for the device.</param>
/// <param name="CreatedAt">When it was queued.</param>
/// <param name="ExpiresAt">When it expires if unanswered.</param>
/// <param name="PublishedAt">When the broker accepted it (QoS 2 complete).</param>
/// <param name="AnsweredAt">When the device's answer was stored.</param>
/// <param name="ExpiredAt">When it expired.</param>
/// <param name="CancelledAt">When an operator cancelled it.</param>
/// <param name="RequestedBy">Who queued it: an API key's name, or "heartbeat".</param>
/// <param name="CancelledBy">The API key (by name) that cancelled it.</param>
/// <param name="BatchId">The bulk request it belongs to, if any.</param>
public sealed record CommandView(
    Guid Id,
    string DeviceId,
    string Command,
    JsonElement? Payload,
    CommandStatus Status,
    JsonElement? Result,
    JsonElement? Response,
    int TtlSeconds,
    DateTimeOffset CreatedAt,
    DateTimeOffset ExpiresAt,
    DateTimeOffset? PublishedAt,
    DateTimeOffset? AnsweredAt,
    DateTimeOffset? ExpiredAt,
    DateTimeOffset? CancelledAt,
    string? RequestedBy,
    string? CancelledBy,
    Guid? BatchId);

public static class CommandViewMapping
{
    public static CommandView ToView(this Command c)
    {
        var response = Json.Parse(c.Response);
        return new(c.Id, c.DeviceId, c.Name, Json.Parse(c.Payload), c.Status, ResultOf(c.Result, response), response, c.TtlSeconds,
            c.CreatedAt, c.ExpiresAt, c.PublishedAt, c.AnsweredAt, c.ExpiredAt, c.CancelledAt, c.RequestedBy, c.CancelledBy, c.BatchId);
    }

    // The stored result is text (an object's JSON text, or a string's value), which cannot tell "{}" the object from
    // "{}" the string; the device's answer, stored whole, can: its commandResult is the value as sent.
    private static JsonElement? ResultOf(string? stored, JsonElement? response) =>
        response is { ValueKind: JsonValueKind.Object } answer && answer.TryGetProperty("commandResult", out var result) ? result
        : stored is null ? null
        : JsonSerializer.SerializeToElement(stored);
}
