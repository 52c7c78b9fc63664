using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using IotGateway.Commands;
using IotGateway.Data;
using IotGateway.Devices;
using IotGateway.Events;
using IotGateway.Telemetry;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace IotGateway.Api;

// A body that is not JSON (a stream, a file), with an example, for Swagger: the API explorer only describes JSON.
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class TextResponseAttribute(string mediaType, string example) : Attribute
{
    public string MediaType { get; } = mediaType;
    public string Example { get; } = example;
}

// Whole examples of the API's answers, as the gateway writes them, so Swagger UI shows real ones.
public sealed class SchemaExamples : ISchemaFilter
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    private static readonly DateTimeOffset At = new(2026, 11, 25, 10, 15, 3, 501, TimeSpan.Zero);
    private static readonly Guid CommandId = Guid.Parse("01937a4e-5f7c-7d21-9c55-0a4b3c2d1e0f");
    private static readonly Guid BatchId = Guid.Parse("01937a4f-0a11-7b42-8e3d-6c5b4a392817");

    private static readonly ReadingView Reading = new(1041, "sensor-1", At, "iot/data/sensor-1", PayloadFormat.Json,
        JsonSerializer.SerializeToElement(new { deviceId = "sensor-1", messageType = "DATA", temp = 21.5, sensors = new { humidity = 40 }, messageId = "r-17" }),
        "r-17");

    private static readonly Dictionary<Type, object> Examples = new()
    {
        [typeof(ReadingView)] = Reading,
        [typeof(DeviceView)] = new DeviceView("sensor-1", true, At, At.AddDays(-12), At.AddHours(-3), At.AddHours(-3).AddMinutes(-5), 1041, 0, Reading),
        [typeof(CommandView)] = new CommandView(CommandId, "sensor-1", "PING", null, CommandStatus.Completed, "PONG",
            JsonSerializer.SerializeToElement(new { deviceId = "sensor-1", messageType = "commandResp", commandResult = "PONG", uuid = CommandId, command = "PING" }),
            300, At, At.AddSeconds(300), At.AddMilliseconds(2), At.AddMilliseconds(9), null, null, "ops-console", null, null),
        [typeof(QueuedCommand)] = new QueuedCommand(CommandId, "sensor-1", CommandStatus.Pending),
        [typeof(AggregateItem)] = new AggregateItem(new DateTimeOffset(2026, 11, 25, 10, 0, 0, TimeSpan.Zero), 6, 20.5, 21.9, 21.2, 0),
        [typeof(AggregateAnswer)] = new AggregateAnswer(
            [
                new AggregateItem(new DateTimeOffset(2026, 11, 25, 10, 0, 0, TimeSpan.Zero), 6, 20.5, 21.9, 21.2, 0),
                new AggregateItem(new DateTimeOffset(2026, 11, 25, 10, 1, 0, TimeSpan.Zero), 5, 21.0, 23.1, 22.02, 1),
                new AggregateItem(new DateTimeOffset(2026, 11, 25, 10, 3, 0, TimeSpan.Zero), 6, 22.4, 22.9, 22.65, 0),
            ],
            "sensor-1", "temp", 60, new DateTimeOffset(2026, 11, 25, 10, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 11, 25, 11, 0, 0, TimeSpan.Zero),
            AggregateRequest.MaxIntervals, 1),
        [typeof(ForgottenDevice)] = new ForgottenDevice("sensor-1", 1041, 12),
        [typeof(BulkCommandAccepted)] = new BulkCommandAccepted(BatchId, 250),
        [typeof(BulkCommandSummary)] = new BulkCommandSummary(BatchId, 250,
            new Dictionary<CommandStatus, int> { [CommandStatus.Completed] = 236, [CommandStatus.Published] = 11, [CommandStatus.Failed] = 3 }),
        [typeof(BulkCancelled)] = new BulkCancelled(BatchId, 11, 250,
            new Dictionary<CommandStatus, int> { [CommandStatus.Completed] = 236, [CommandStatus.Cancelled] = 11, [CommandStatus.Failed] = 3 }),
        [typeof(EventStreamToken)] = new EventStreamToken("Xo3o1kHcV1o0mX6r5T0rj3p6pQ9bA7yqT1lE2b9cW4s", At.AddSeconds(60),
            "/api/events?access_token=Xo3o1kHcV1o0mX6r5T0rj3p6pQ9bA7yqT1lE2b9cW4s"),
    };

    public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
    {
        if (schema is OpenApiSchema concrete && Examples.TryGetValue(context.Type, out var example))
        {
            concrete.Examples = [JsonSerializer.SerializeToNode(example, example.GetType(), Json)!];
        }
    }
}

// Routes whose answer is not JSON: their [TextResponse] bodies with examples for 200, and their errors as what they
// are, problem details (the API explorer lists them under the JSON formatters' media types, or the stream's).
public sealed class TextResponses : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var bodies = context.MethodInfo.GetCustomAttributes<TextResponseAttribute>().ToList();
        if (bodies.Count == 0 || operation.Responses is null)
        {
            return;
        }

        operation.Responses["200"] = new OpenApiResponse
        {
            Description = operation.Responses.TryGetValue("200", out var ok) ? ok.Description : "OK",
            Content = bodies.ToDictionary(b => b.MediaType, b => (IOpenApiMediaType)new OpenApiMediaType
            {
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                Example = JsonValue.Create(b.Example),
            }),
        };

        foreach (var (status, response) in operation.Responses)
        {
            if (status != "200" && response is OpenApiResponse { Content: { Count: > 0 } content })
            {
                var schema = content.Values.First().Schema;
                content.Clear();
                content["application/problem+json"] = new OpenApiMediaType { Schema = schema };
            }
        }
    }
}
