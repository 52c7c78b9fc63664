using System.Text.Json;
using System.Text.Json.Nodes;
using IotGateway.Protocol;

namespace DeviceSimulator.Commands;

// What the device does with each command. The answers are the strings the gateway shows its users.
internal static class DeviceCommands
{
    public const string Ping = "PING";
    public const string SetInterval = "SET_INTERVAL";
    public const string GetConfig = "GET_CONFIG";
    public const string Reboot = "REBOOT";

    public const string UnknownCommand = "ERROR_UNKNOWN_COMMAND";
    public const string InvalidArgument = "ERROR_INVALID_ARGUMENT";

    public static readonly TimeSpan MinimumInterval = TimeSpan.FromSeconds(0.1);
    public static readonly TimeSpan MaximumInterval = TimeSpan.FromDays(1);

    public static CommandOutcome Execute(CommandRequest request, ICommandTarget device) => request.Command?.ToUpperInvariant() switch
    {
        Ping => CommandOutcome.Answer("PONG"),
        SetInterval => ChangeInterval(request, device),
        GetConfig => new CommandOutcome(device.DescribeConfiguration()),
        Reboot => new CommandOutcome(JsonValue.Create("REBOOTING"), RebootAfterAnswer: true),
        _ => CommandOutcome.Answer(UnknownCommand),
    };

    private static CommandOutcome ChangeInterval(CommandRequest request, ICommandTarget device)
    {
        if (request.Arguments is not { ValueKind: JsonValueKind.Object } arguments
            || !arguments.TryGetProperty("seconds", out var seconds)
            || seconds.ValueKind != JsonValueKind.Number
            || !seconds.TryGetDouble(out var value)
            || !double.IsFinite(value)
            || value < MinimumInterval.TotalSeconds
            || value > MaximumInterval.TotalSeconds)
        {
            return CommandOutcome.Answer(InvalidArgument);
        }

        device.ChangeInterval(TimeSpan.FromSeconds(value));
        return CommandOutcome.Answer("OK");
    }
}

// The part of a device that commands act on.
internal interface ICommandTarget
{
    void ChangeInterval(TimeSpan interval);

    JsonObject DescribeConfiguration();
}

// The commandResult to send back, and whether the device must drop its connection once the answer is out.
internal sealed record CommandOutcome(JsonNode Result, bool RebootAfterAnswer = false)
{
    public static CommandOutcome Answer(string result) => new(JsonValue.Create(result));
}
