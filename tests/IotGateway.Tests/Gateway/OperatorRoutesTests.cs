using IotGateway.Commands;

namespace IotGateway.Tests.Gateway;

// The everyday routes across devices: the command list, a batch's commands, cancelling a batch, forgetting a device;
// with Mosquitto, SQLite and the Reader/Operator split.
public sealed class SqliteOperatorRoutesTests : OperatorRoutesTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;

    [Fact]
    public async Task ForgettingADeviceNeedsTheBrokerToClearItsSignIn()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        SeededReadings.Insert(gateway.Storage, "stranded", [new(DateTimeOffset.UtcNow.AddMinutes(-1), """{"temp":1}""")]);
        var response = await gateway.Http.DeleteAsync("/api/devices/stranded");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("Nothing was deleted", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal((1, 1), SeededReadings.Count(gateway.Storage, "stranded"));
    }

    [Fact]
    public async Task SwaggerDocumentsTheOperatorRoutesWithExamples()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        var document = await gateway.Http.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var paths = document.GetProperty("paths");
        foreach (var (route, method) in new[]
        {
            ("/api/devices/{deviceId}/telemetry/latest", "get"), ("/api/devices/{deviceId}/telemetry/aggregate", "get"),
            ("/api/devices/{deviceId}/telemetry/export", "get"), ("/api/events", "get"), ("/api/events/tokens", "post"),
            ("/api/commands", "get"), ("/api/commands/bulk/{batchId}/commands", "get"), ("/api/commands/bulk/{batchId}", "delete"),
            ("/api/devices/{deviceId}", "delete"),
        })
        {
            Assert.True(paths.TryGetProperty(route, out var path) && path.TryGetProperty(method, out _), $"swagger documents {method} {route}");
            Assert.False(string.IsNullOrEmpty(path.GetProperty(method).GetProperty("summary").GetString()), $"{method} {route} has a summary");
        }

        // Whole examples of the answers, as the gateway writes them.
        var schemas = document.GetProperty("components").GetProperty("schemas");
        foreach (var schema in new[] { "DeviceView", "ReadingView", "AggregateAnswer", "CommandView", "ForgottenDevice", "BulkCancelled", "EventStreamToken" })
        {
            Assert.True(schemas.GetProperty(schema).TryGetProperty("example", out _), $"{schema} has an example");
        }

        Assert.Equal(JsonValueKind.Object, schemas.GetProperty("DeviceView").GetProperty("example").GetProperty("latestReading").ValueKind);

        // The stream and the downloads: their media types with examples; their errors as problem details.
        var events = paths.GetProperty("/api/events").GetProperty("get").GetProperty("responses");
        Assert.Contains("data: {\"type\":\"reading\"", events.GetProperty("200").GetProperty("content").GetProperty("text/event-stream").GetProperty("example").GetString(),
            StringComparison.Ordinal);
        Assert.True(events.GetProperty("400").GetProperty("content").TryGetProperty("application/problem+json", out _));
        var export = paths.GetProperty("/api/devices/{deviceId}/telemetry/export").GetProperty("get").GetProperty("responses");
        var content = export.GetProperty("200").GetProperty("content");
        Assert.StartsWith(IotGateway.Telemetry.CsvExportWriter.Header, content.GetProperty("text/csv").GetProperty("example").GetString(), StringComparison.Ordinal);
        Assert.True(content.TryGetProperty("application/x-ndjson", out _));
        Assert.Equal(["application/problem+json"], export.GetProperty("404").GetProperty("content").EnumerateObject().Select(p => p.Name));
    }
}

public sealed class PostgresOperatorRoutesTests : OperatorRoutesTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class OperatorRoutesTests
{
    protected abstract DatabaseProvider Provider { get; }

    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public async Task CommandsAreListedAcrossDevicesWithFiltersAndPages()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, provider: Provider);
        await using var alpha = await SignInAsync(broker, gateway, "alpha");
        await using var beta = await SignInAsync(broker, gateway, "beta");

        var a1 = await gateway.QueueCommandAsync("alpha", new { command = "PING" });
        var a2 = await gateway.QueueCommandAsync("alpha", new { command = "REPORT" });
        var b1 = await gateway.QueueCommandAsync("beta", new { command = "PING" });
        await gateway.WaitForCommandAsync(a1.Id, CommandStatus.Published);
        await alpha.PublishAsync(TopicRoots.Default.For("alpha").CommandResponse, GatewayEndToEndTests.ArticleAnswer("alpha", a1.Id, "PING", "PONG"));
        await gateway.WaitForCommandAsync(a1.Id, CommandStatus.Completed);
        await gateway.WaitForCommandAsync(a2.Id, CommandStatus.Published);
        var between = DateTimeOffset.UtcNow;
        await Eventually.UntilAsync(() => DateTimeOffset.UtcNow > between, Timeout, "the clock moves past the mark");
        var bulk = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "STATUS", deviceIds = new[] { "alpha", "beta" } });
        var batch = (await bulk.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json))!;

        var all = await ListAsync(gateway, "/api/commands");
        Assert.Equal(5, all.Count);
        Assert.All(all.Take(2), c => Assert.Equal(batch.BatchId, c.BatchId)); // newest first: the batch, then the rest
        Assert.Equal([b1.Id, a2.Id, a1.Id], all.Skip(2).Select(c => c.Id));

        Assert.Equal([a1.Id], (await ListAsync(gateway, "/api/commands?status=Completed")).Select(c => c.Id));
        Assert.Equal(3, (await ListAsync(gateway, "/api/commands?deviceId=alpha")).Count);
        Assert.Equal([a2.Id], (await ListAsync(gateway, $"/api/commands?status=Published&deviceId=alpha&to={Stamp(between)}")).Select(c => c.Id));
        Assert.Equal(["alpha", "beta"], (await ListAsync(gateway, $"/api/commands?batchId={batch.BatchId}")).Select(c => c.DeviceId).Order());
        Assert.All(await ListAsync(gateway, $"/api/commands?from={Stamp(between)}"), c => Assert.Equal(batch.BatchId, c.BatchId));
        Assert.Equal([a2.Id, a1.Id], (await ListAsync(gateway, $"/api/commands?deviceId=alpha&to={Stamp(between)}")).Select(c => c.Id));

        // Keyset pages of one: the same commands in the same order, then no cursor.
        var paged = new List<Guid>();
        string? cursor = null;
        do
        {
            var page = await gateway.Http.GetFromJsonAsync<Page<CommandView>>("/api/commands?limit=1" + (cursor is null ? "" : $"&cursor={cursor}"), GatewayApp.Json);
            paged.AddRange(page!.Items.Select(c => c.Id));
            cursor = page.NextCursor;
        }
        while (cursor is not null);

        Assert.Equal(all.Select(c => c.Id), paged);

        using var reader = gateway.CreateClient(GatewayApp.ReaderKey);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/commands")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await gateway.Http.GetAsync("/api/commands?status=Sleeping")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await gateway.Http.GetAsync("/api/commands?deviceId=a%2Bb")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await gateway.Http.GetAsync("/api/commands?cursor=zzz")).StatusCode);
    }

    [SkippableFact]
    public async Task BatchCommandsAreListedPerDeviceAndCancelledTogether()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, provider: Provider);
        await using var d1 = await SignInAsync(broker, gateway, "unit-1");
        await using var d2 = await SignInAsync(broker, gateway, "unit-2");
        await using var d3 = await SignInAsync(broker, gateway, "unit-3");

        var post = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "UPDATE", deviceIds = new[] { "unit-1", "unit-2", "unit-3" } });
        var batch = (await post.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json))!;
        var commands = await ListAsync(gateway, $"/api/commands/bulk/{batch.BatchId}/commands");
        Assert.Equal(["unit-1", "unit-2", "unit-3"], commands.Select(c => c.DeviceId).Order());
        var first = commands.Single(c => c.DeviceId == "unit-1");
        await d1.WaitForMessageAsync(m => m.Payload.Contains(first.Id.ToString(), StringComparison.Ordinal), Timeout);
        await d1.PublishAsync(TopicRoots.Default.For("unit-1").CommandResponse, GatewayEndToEndTests.ArticleAnswer("unit-1", first.Id, "UPDATE", "OK"));
        await gateway.WaitForCommandAsync(first.Id, CommandStatus.Completed);

        // In queue order, pageable, filterable.
        var pageOfTwo = await gateway.Http.GetFromJsonAsync<Page<CommandView>>($"/api/commands/bulk/{batch.BatchId}/commands?limit=2", GatewayApp.Json);
        Assert.Equal(commands.Take(2).Select(c => c.Id), pageOfTwo!.Items.Select(c => c.Id));
        var rest = await gateway.Http.GetFromJsonAsync<Page<CommandView>>($"/api/commands/bulk/{batch.BatchId}/commands?limit=2&cursor={pageOfTwo.NextCursor}", GatewayApp.Json);
        Assert.Equal([commands[2].Id], rest!.Items.Select(c => c.Id));
        Assert.Null(rest.NextCursor);
        Assert.Equal([first.Id], (await ListAsync(gateway, $"/api/commands/bulk/{batch.BatchId}/commands?status=Completed")).Select(c => c.Id));

        using var reader = gateway.CreateClient(GatewayApp.ReaderKey);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync($"/api/commands/bulk/{batch.BatchId}/commands")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.DeleteAsync($"/api/commands/bulk/{batch.BatchId}")).StatusCode);

        var cancel = await gateway.Http.DeleteAsync($"/api/commands/bulk/{batch.BatchId}");
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        var cancelled = (await cancel.Content.ReadFromJsonAsync<BulkCancelled>(GatewayApp.Json))!;
        Assert.Equal(2, cancelled.Cancelled);
        Assert.Equal(3, cancelled.Total);
        Assert.Equal(1, cancelled.ByStatus[CommandStatus.Completed]);
        Assert.Equal(2, cancelled.ByStatus[CommandStatus.Cancelled]);
        foreach (var command in commands.Where(c => c.Id != first.Id))
        {
            var now = await gateway.GetCommandAsync(command.Id);
            Assert.Equal(CommandStatus.Cancelled, now.Status);
            Assert.Equal("test-operator", now.CancelledBy);
        }

        await gateway.WaitForDeviceAsync("unit-2", d => d.PendingCommands == 0, "the cancelled command is no longer pending");
        var again = (await (await gateway.Http.DeleteAsync($"/api/commands/bulk/{batch.BatchId}")).Content.ReadFromJsonAsync<BulkCancelled>(GatewayApp.Json))!;
        Assert.Equal(0, again.Cancelled);

        var unknown = Guid.NewGuid();
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.GetAsync($"/api/commands/bulk/{unknown}/commands")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.DeleteAsync($"/api/commands/bulk/{unknown}")).StatusCode);
    }

    [SkippableFact]
    public async Task ForgettingADeviceDeletesItsDataAndClearsItsRetainedSignIn()
    {
        await using var broker = await StartBrokerAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, provider: Provider);
        await using var old = await SignInAsync(broker, gateway, "old-sensor");
        await using var keeper = await SignInAsync(broker, gateway, "keeper");
        for (var i = 0; i < 3; i++)
        {
            await old.PublishAsync(TopicRoots.Default.For("old-sensor").Data, $$"""{"temp":{{i}}}""", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        await keeper.PublishAsync(TopicRoots.Default.For("keeper").Data, """{"temp":7}""", MqttQualityOfServiceLevel.AtLeastOnce);
        var open = await gateway.QueueCommandAsync("old-sensor", new { command = "PING" });
        await gateway.WaitForCommandAsync(open.Id, CommandStatus.Published);
        await gateway.WaitForDeviceAsync("old-sensor", d => d.TelemetryCount == 3, "its readings are stored");
        await gateway.WaitForDeviceAsync("keeper", d => d.TelemetryCount == 1, "the other device's reading is stored");

        using var reader = gateway.CreateClient(GatewayApp.ReaderKey);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.DeleteAsync("/api/devices/old-sensor")).StatusCode);

        var response = await gateway.Http.DeleteAsync("/api/devices/old-sensor");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new ForgottenDevice("old-sensor", 3, 1), await response.Content.ReadFromJsonAsync<ForgottenDevice>(GatewayApp.Json));

        Assert.Null(await gateway.GetDeviceAsync("old-sensor"));
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.GetAsync("/api/devices/old-sensor/telemetry")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await gateway.Http.GetAsync($"/api/commands/{open.Id}")).StatusCode);
        Assert.Equal((0, -1), RowsAndCounter(gateway, "old-sensor"));
        Assert.Equal(0, gateway.Storage.Scalar("""SELECT COUNT(*) FROM "Commands" WHERE "DeviceId" = $d""", "old-sensor"));
        Assert.Equal((1, 1), RowsAndCounter(gateway, "keeper"));
        Assert.DoesNotContain("old-sensor", (await gateway.Http.GetFromJsonAsync<Page<DeviceView>>("/api/devices", GatewayApp.Json))!.Items.Select(d => d.Id));

        // On the broker: a new subscriber gets keeper's retained SIGN_IN and nothing for old-sensor. Retained messages
        // are sent right after the SUBACK, so they all arrive before a marker published once the subscription stands.
        await using var observer = await TestMqttClient.ConnectAsync(broker, "observer");
        await observer.SubscribeAsync(TopicRoots.Default.For("+").Register);
        await observer.SubscribeAsync("test/marker");
        await observer.PublishAsync("test/marker", "after the retained ones");
        await observer.WaitForMessageAsync("test/marker", Timeout);
        var retained = observer.ReceivedMessages.Where(m => m.Retain).Select(m => m.Topic).ToList();
        Assert.Contains(TopicRoots.Default.For("keeper").Register, retained);
        Assert.DoesNotContain(TopicRoots.Default.For("old-sensor").Register, retained);

        // A device that keeps talking is simply known again, counted from its next reading.
        await old.PublishAsync(TopicRoots.Default.For("old-sensor").Data, """{"temp":99}""", MqttQualityOfServiceLevel.AtLeastOnce);
        var back = await gateway.WaitForDeviceAsync("old-sensor", d => d.TelemetryCount == 1, "the device is known again from its next reading");
        Assert.Equal(99, back.LatestReading!.Payload.GetProperty("temp").GetInt32());
        Assert.Equal(0, back.PendingCommands);
    }

    // A device's readings and its telemetryCount (-1: no device row), as a second process reads them.
    private static (long Rows, long Counter) RowsAndCounter(GatewayApp gateway, string deviceId) =>
        (gateway.Storage.Scalar("""SELECT COUNT(*) FROM "Telemetry" WHERE "DeviceId" = $d""", deviceId),
         gateway.Storage.Scalar("""SELECT COALESCE((SELECT "TelemetryCount" FROM "Devices" WHERE "Id" = $d), -1)""", deviceId));

    private static async Task<List<CommandView>> ListAsync(GatewayApp gateway, string url)
    {
        var page = await gateway.Http.GetFromJsonAsync<Page<CommandView>>(url, GatewayApp.Json);
        Assert.Null(page!.NextCursor);
        return [.. page.Items];
    }

    private static string Stamp(DateTimeOffset at) => Uri.EscapeDataString(at.ToString("O"));

    private static async Task<TestMqttClient> SignInAsync(MosquittoBroker broker, GatewayApp gateway, string deviceId)
    {
        var device = await TestMqttClient.ConnectArticleDeviceAsync(broker.Host, broker.Port, deviceId);
        await device.SubscribeAsync(TopicRoots.Default.For(deviceId).CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For(deviceId).Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync(deviceId, d => d.SignedIn, $"{deviceId} signs in");
        return device;
    }

    protected async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return await MosquittoBroker.StartAsync();
    }
}
