using IotGateway.Protocol;
using System.Text.Json;
using System.Text.Json.Nodes;
using IotGateway.Commands;
using IotGateway.Devices;
using IotGateway.Events;
using IotGateway.Telemetry;

namespace IotGateway.Api;

// The values Swagger shows, built as the API builds its answers. The commands are those the device simulator
// (src/DeviceSimulator) understands, with the answers it gives.
internal static class Examples
{
    public sealed record DeviceCommand(string Name, string Summary, JsonNode? Payload, JsonNode Result);

    public static readonly IReadOnlyList<DeviceCommand> Commands =
    [
        new("PING", "Is the device there? It answers PONG.", null, "PONG"),
        new("SET_INTERVAL", "Send telemetry every 30 s from now on; it answers OK.", new JsonObject { ["seconds"] = 30 }, "OK"),
        new("GET_CONFIG", "Its settings; the answer is a JSON object.", null, new JsonObject
        {
            ["deviceId"] = DeviceId, ["broker"] = "mqtt://localhost:1883", ["protocol"] = "5", ["intervalSeconds"] = 15,
            ["onlineSeconds"] = 5, ["alwaysOnline"] = false, ["qos"] = 2,
            ["topics"] = new JsonObject
            {
                ["data"] = TopicRoots.DefaultData, ["commandRequest"] = TopicRoots.DefaultCommandRequest,
                ["commandResponse"] = TopicRoots.DefaultCommandResponse, ["register"] = TopicRoots.DefaultRegister,
            },
        }),
        new("REBOOT", "Restart; it answers REBOOTING, then reconnects.", null, "REBOOTING"),
    ];

    private const string DeviceId = "sim-device-0001";

    private static readonly JsonSerializerOptions Options = Json.Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));
    private static readonly DateTimeOffset At = new(2026, 11, 24, 8, 53, 0, 123, TimeSpan.Zero);
    private static readonly Guid CommandId = Guid.Parse("0193a5c2-7d4e-7b1a-9c3f-5e2d8a6b4c10");
    private static readonly Guid BatchId = Guid.Parse("0193a5c2-9e01-7f2b-8d4c-1a2b3c4d5e6f");

    public static JsonNode Request(DeviceCommand command)
    {
        var body = new JsonObject { ["command"] = command.Name };
        if (command.Payload is not null)
        {
            body["payload"] = command.Payload.DeepClone();
        }

        body["ttlSeconds"] = 300;
        return body;
    }

    public static JsonNode Answered(DeviceCommand command) => Of(View(command));

    public static JsonNode Queued() => Of(new QueuedCommand(CommandId, DeviceId, CommandStatus.Pending));

    // What POST …/commands?waitSeconds=N answers when the device has not answered in time: published, not answered.
    public static JsonNode StillOpen(DeviceCommand command) => Of(View(command) with
    {
        Status = CommandStatus.Published, Result = null, Response = null, AnsweredAt = null,
    });

    public static JsonNode? ForType(Type type) => type switch
    {
        _ when type == typeof(CommandView) => Of(View(Commands[2])),
        _ when type == typeof(Page<CommandView>) => Of(new Page<CommandView>([View(Commands[2])], Cursor.Encode(41))),
        _ when type == typeof(QueuedCommand) => Of(new QueuedCommand(CommandId, DeviceId, CommandStatus.Pending)),
        _ when type == typeof(QueueCommandRequest) => Request(Commands[0]),
        _ when type == typeof(BulkCommandRequest) => new JsonObject { ["command"] = "PING", ["signedIn"] = true },
        _ when type == typeof(BulkCommandAccepted) => Of(new BulkCommandAccepted(BatchId, 2)),
        _ when type == typeof(BulkCommandSummary) => Of(new BulkCommandSummary(BatchId, 2,
            new Dictionary<CommandStatus, int> { [CommandStatus.Completed] = 1, [CommandStatus.Published] = 1 })),
        _ when type == typeof(DeviceView) => Of(Device),
        _ when type == typeof(Page<DeviceView>) => Of(new Page<DeviceView>([Device], null)),
        _ when type == typeof(ReadingView) => Of(Reading),
        _ when type == typeof(Page<ReadingView>) => Of(new Page<ReadingView>([Reading], Cursor.Encode(1041))),
        _ when type == typeof(AggregateAnswer) => Of(Aggregate),
        _ when type == typeof(AggregateItem) => Of(Aggregate.Items[0]),
        _ when type == typeof(ForgottenDevice) => Of(new ForgottenDevice(DeviceId, 5120, 12)),
        _ when type == typeof(BulkCancelled) => Of(new BulkCancelled(BatchId, 1, 2,
            new Dictionary<CommandStatus, int> { [CommandStatus.Completed] = 1, [CommandStatus.Cancelled] = 1 })),
        _ when type == typeof(EventStreamToken) => Of(new EventStreamToken(Token, At.AddSeconds(60), $"/api/events?access_token={Token}")),
        _ when type == typeof(ValidationProblemDetails) => Problem("400", "api/devices/{deviceId}/commands"),
        _ when type == typeof(ProblemDetails) => Problem("404", "api/devices/{deviceId}"),
        _ => null,
    };

    // An error answer as the gateway writes it for that status on that route.
    public static JsonNode Problem(string status, string path)
    {
        var (title, detail) = status switch
        {
            "401" => ("API key required", "Send an API key in the X-API-Key header."),
            "403" => ("Operator key required", "This key's role is Reader: it may read, but queueing and cancelling commands needs an Operator key."),
            "404" when path.Contains("bulk", StringComparison.Ordinal) => ("Unknown batch", $"There is no bulk request {BatchId}."),
            "404" when path.StartsWith("api/commands", StringComparison.Ordinal) => ("Unknown command", $"There is no command {CommandId}."),
            "404" => ("Unknown device", $"The gateway has never seen device '{DeviceId}'."),
            "409" => ("Command already finished", $"Command {CommandId} is Completed and can no longer be cancelled."),
            "413" => ("Request body too large", "The body is 70000 bytes; this route accepts at most 65536."),
            "429" => ("Too many command requests",
                "This key may queue or cancel at most 200 commands per second (Api:RateLimit). Retry after 1 s."),
            "503" => ("Database not available",
                "The database cannot be used now (SQLite Error 5: 'database is locked'.); nothing of this request was stored. Retry later."),
            _ => ("One or more validation errors occurred.", null),
        };
        var problem = new JsonObject
        {
            ["type"] = TypeFor(status),
            ["title"] = title,
            ["status"] = int.Parse(status, System.Globalization.CultureInfo.InvariantCulture),
        };
        if (detail is not null)
        {
            problem["detail"] = detail;
        }
        else
        {
            var (field, error) = path.Contains("telemetry", StringComparison.Ordinal)
                ? ("from", $"from is not a time: 'yesterday'. Use {ApiTime.Accepted}.")
                : ("ttlSeconds", "ttlSeconds must be at most 604800 (Commands:MaxTtlSeconds).");
            problem["errors"] = new JsonObject { [field] = new JsonArray(error) };
        }

        problem["traceId"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        return problem;
    }

    private static string TypeFor(string status) => status switch
    {
        "400" => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "401" => "https://tools.ietf.org/html/rfc9110#section-15.5.2",
        "403" => "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        "404" => "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        "409" => "https://tools.ietf.org/html/rfc9110#section-15.5.10",
        "413" => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        "429" => "https://tools.ietf.org/html/rfc6585#section-4",
        _ => "https://tools.ietf.org/html/rfc9110#section-15.6.4",
    };

    private static DeviceView Device => new(DeviceId, true, DeviceTransports.Mqtt, At.AddSeconds(12), At.AddDays(-3), At, At.AddHours(-1), 5120, 1, Reading);

    private const string Token = "Xo3o1kHcV1o0mX6r5T0rj3p6pQ9bA7yqT1lE2b9cW4s";

    private static AggregateAnswer Aggregate
    {
        get
        {
            var hour = new DateTimeOffset(At.Year, At.Month, At.Day, At.Hour, 0, 0, TimeSpan.Zero);
            return new AggregateAnswer(
                [
                    new AggregateItem(hour.AddMinutes(50), 6, 22.9, 23.4, 23.15, 0),
                    new AggregateItem(hour.AddMinutes(51), 5, 23.1, 23.9, 23.42, 1),
                    new AggregateItem(hour.AddMinutes(53), 6, 23.3, 23.6, 23.48, 0),
                ],
                DeviceId, "temp", 60, hour, hour.AddHours(1), AggregateRequest.MaxIntervals, 1);
        }
    }

    private static ReadingView Reading => new(1042, DeviceId, At, $"iot/data/{DeviceId}", PayloadFormat.Json,
        JsonSerializer.SerializeToElement(new { deviceId = DeviceId, messageType = "DATA", temp = 23.6, lat = 48.015722, lng = -88.625528 }), null);

    private static CommandView View(DeviceCommand command)
    {
        var result = JsonSerializer.SerializeToElement(command.Result);
        var response = JsonSerializer.SerializeToElement(new JsonObject
        {
            ["deviceId"] = DeviceId, ["messageType"] = "commandResp", ["commandResult"] = command.Result.DeepClone(),
            ["uuid"] = CommandId.ToString(), ["command"] = command.Name,
        });
        JsonElement? payload = command.Payload is null ? null : JsonSerializer.SerializeToElement(command.Payload);
        return new CommandView(CommandId, DeviceId, command.Name, payload, CommandStatus.Completed, result, response, 300,
            At, At.AddSeconds(300), At.AddMilliseconds(4), At.AddMilliseconds(9), null, null, "ops-console", null, null);
    }

    private static JsonNode Of<T>(T value) => JsonSerializer.SerializeToNode(value, Options)!;
}
