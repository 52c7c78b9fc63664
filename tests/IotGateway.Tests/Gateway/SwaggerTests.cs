
namespace IotGateway.Tests.Gateway;

// Swagger that teaches: the document the gateway serves shows a working request for each command the simulator
// understands, JSON payloads as JSON, and every error answer as problem details with the gateway's own words.
public sealed class SwaggerTests
{
    // What the device simulator (src/DeviceSimulator/Commands/DeviceCommands.cs) answers, and the payload it takes.
    private static readonly string[] SimulatorCommands = ["PING", "SET_INTERVAL", "GET_CONFIG", "REBOOT"];

    [Fact]
    public async Task TheCommandRouteShowsARequestAndAnAnswerForEachSimulatorCommand()
    {
        var (gateway, _) = await GatewayApp.StartEmbeddedAsync();
        await using var app = gateway;
        var document = await DocumentAsync(gateway);

        var examples = document.GetProperty("paths").GetProperty("/api/devices/{deviceId}/commands").GetProperty("post")
            .GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("examples");
        Assert.Equal(SimulatorCommands, examples.EnumerateObject().Select(e => e.Name));
        foreach (var example in examples.EnumerateObject())
        {
            var value = example.Value.GetProperty("value");
            Assert.Equal(example.Name, value.GetProperty("command").GetString());
            // Only SET_INTERVAL takes arguments: {"seconds": 30}.
            Assert.Equal(example.Name == "SET_INTERVAL", value.TryGetProperty("payload", out var payload));
            if (example.Name == "SET_INTERVAL")
            {
                Assert.Equal(30, payload.GetProperty("seconds").GetInt32());
            }
        }

        // The synchronous form (?waitSeconds): 200 with the answered command, 202 in either shape.
        var postResponses = document.GetProperty("paths").GetProperty("/api/devices/{deviceId}/commands").GetProperty("post").GetProperty("responses");
        var answeredInTime = postResponses.GetProperty("200").GetProperty("content").GetProperty("application/json").GetProperty("examples");
        Assert.Equal(SimulatorCommands.Select(c => c + " answered"), answeredInTime.EnumerateObject().Select(e => e.Name));
        Assert.Equal("Completed", answeredInTime.GetProperty("PING answered").GetProperty("value").GetProperty("status").GetString());
        var accepted = postResponses.GetProperty("202").GetProperty("content").GetProperty("application/json");
        Assert.Equal(["Queued", "Still open"], accepted.GetProperty("examples").EnumerateObject().Select(e => e.Name));
        Assert.Equal("Published", accepted.GetProperty("examples").GetProperty("Still open").GetProperty("value").GetProperty("status").GetString());
        Assert.Equal(["#/components/schemas/QueuedCommand", "#/components/schemas/CommandView"],
            accepted.GetProperty("schema").GetProperty("anyOf").EnumerateArray().Select(s => s.GetProperty("$ref").GetString()));

        var answers = document.GetProperty("paths").GetProperty("/api/commands/{id}").GetProperty("get").GetProperty("responses")
            .GetProperty("200").GetProperty("content").GetProperty("application/json").GetProperty("examples");
        Assert.Equal(SimulatorCommands.Select(c => c + " answered"), answers.EnumerateObject().Select(e => e.Name));
        var config = answers.GetProperty("GET_CONFIG answered").GetProperty("value");
        Assert.Equal(JsonValueKind.Object, config.GetProperty("result").ValueKind);
        Assert.Equal(JsonValueKind.Object, config.GetProperty("response").ValueKind);
        Assert.Equal("PONG", answers.GetProperty("PING answered").GetProperty("value").GetProperty("result").GetString());
    }

    [Fact]
    public async Task JsonPayloadsAreJsonAndNoExampleIsInvented()
    {
        var (gateway, _) = await GatewayApp.StartEmbeddedAsync();
        await using var app = gateway;
        var schemas = (await DocumentAsync(gateway)).GetProperty("components").GetProperty("schemas");

        // payload, result and response hold any JSON value: no "type": "string".
        var command = schemas.GetProperty("CommandView");
        foreach (var name in new[] { "payload", "result", "response" })
        {
            Assert.False(command.GetProperty("properties").GetProperty(name).TryGetProperty("type", out _), $"CommandView.{name} has a type");
        }

        var example = ExampleOf(command);
        Assert.Equal(JsonValueKind.Object, example.GetProperty("result").ValueKind);
        Assert.EndsWith("Z", example.GetProperty("createdAt").GetString(), StringComparison.Ordinal);

        // Swagger UI invents additionalProp1…3 for a map without an example: every schema with open-ended properties has one.
        foreach (var schema in schemas.EnumerateObject())
        {
            if (HasOpenProperties(schema.Value))
            {
                Assert.True(schema.Value.TryGetProperty("example", out _) || schema.Value.TryGetProperty("examples", out _),
                    $"{schema.Name} has open-ended properties and no example");
            }
        }
    }

    [Fact]
    public async Task EveryErrorIsProblemDetailsWithTheGatewaysOwnWords()
    {
        var (gateway, _) = await GatewayApp.StartEmbeddedAsync();
        await using var app = gateway;
        var document = await DocumentAsync(gateway);

        var seen = new HashSet<string>();
        foreach (var path in document.GetProperty("paths").EnumerateObject().Where(p => p.Name.StartsWith("/api/", StringComparison.Ordinal)))
        {
            foreach (var operation in path.Value.EnumerateObject())
            {
                var responses = operation.Value.GetProperty("responses");
                var where = $"{operation.Name.ToUpperInvariant()} {path.Name}";
                Assert.True(responses.TryGetProperty("401", out _), $"{where} does not document 401");
                Assert.True(responses.TryGetProperty("503", out _), $"{where} does not document 503");
                // Changes need an Operator key; asking for an event stream token is reading (any key).
                var operatorOnly = operation.Name is "post" or "delete" && path.Name != "/api/events/tokens";
                Assert.Equal(operatorOnly, responses.TryGetProperty("403", out _));
                foreach (var response in responses.EnumerateObject().Where(r => r.Name[0] is '4' or '5'))
                {
                    seen.Add(response.Name);
                    var content = response.Value.GetProperty("content");
                    Assert.Equal(["application/problem+json"], content.EnumerateObject().Select(c => c.Name));
                    var media = content.GetProperty("application/problem+json");
                    var schema = media.GetProperty("schema").GetProperty("$ref").GetString();
                    Assert.Equal(response.Name == "400" ? "#/components/schemas/ValidationProblemDetails" : "#/components/schemas/ProblemDetails", schema);
                    Assert.Equal(int.Parse(response.Name, System.Globalization.CultureInfo.InvariantCulture), media.GetProperty("example").GetProperty("status").GetInt32());
                }
            }
        }

        Assert.Superset(new HashSet<string> { "400", "401", "403", "404", "409", "413", "429", "503" }, seen);

        // The examples are the answers: the same title as the real 401 and 404.
        var readDevice = document.GetProperty("paths").GetProperty("/api/devices/{deviceId}").GetProperty("get").GetProperty("responses");
        using var anonymous = gateway.CreateClient(null);
        await AssertSameTitleAsync(readDevice.GetProperty("401"), await anonymous.GetAsync("/api/devices/sim-device-0001"));
        await AssertSameTitleAsync(readDevice.GetProperty("404"), await gateway.Http.GetAsync("/api/devices/sim-device-0001"));
    }

    private static async Task AssertSameTitleAsync(JsonElement documented, HttpResponseMessage actual)
    {
        using (actual)
        {
            var example = documented.GetProperty("content").GetProperty("application/problem+json").GetProperty("example");
            var body = JsonDocument.Parse(await actual.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal((HttpStatusCode)example.GetProperty("status").GetInt32(), actual.StatusCode);
            Assert.Equal(example.GetProperty("title").GetString(), body.GetProperty("title").GetString());
        }
    }

    private static async Task<JsonElement> DocumentAsync(GatewayApp gateway) =>
        JsonDocument.Parse(await gateway.Http.GetStringAsync("/swagger/v1/swagger.json")).RootElement;

    private static JsonElement ExampleOf(JsonElement schema) =>
        schema.TryGetProperty("example", out var example) ? example : schema.GetProperty("examples")[0];

    // additionalProperties that is a schema (not false), here or in a property.
    private static bool HasOpenProperties(JsonElement schema) =>
        (schema.TryGetProperty("additionalProperties", out var open) && open.ValueKind == JsonValueKind.Object)
        || (schema.TryGetProperty("properties", out var properties) && properties.EnumerateObject().Any(p => HasOpenProperties(p.Value)));
}
