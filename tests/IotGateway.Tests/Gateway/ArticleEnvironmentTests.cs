using IotGateway.Commands;

namespace IotGateway.Tests.Gateway;

// The article's server is configured by BROKER, SERVER_ID and four *_TOPIC variables. The built gateway, started
// with exactly those (and a command-line argument, which once let appsettings.json win over them), must use them:
// its session name, and its own topic layout for presence, readings, commands and answers.
public sealed class ArticleEnvironmentTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task ArticleVariablesChooseTheBrokerSessionAndTopics()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        using var data = new TempDirectory("iotgw-article-");
        await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, data.Path, new Dictionary<string, string>
        {
            ["BROKER"] = broker.Url,
            ["SERVER_ID"] = "article-server",
            ["DATA_TOPIC"] = "blog/data",
            ["CMD_REQ_TOPIC"] = "blog/cmd/req",
            ["CMD_RESP_TOPIC"] = "blog/cmd/resp",
            ["REGISTER_TOPIC"] = "blog/register",
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["Api__Keys__0__Key"] = GatewayApp.OperatorKey,
            ["Api__Keys__0__Role"] = "Operator",
        }, "--Logging:LogLevel:Default=Information");
        await gateway.WaitUntilReadyAsync(Timeout);
        Assert.Contains(" as article-server ", broker.ReadLog(), StringComparison.Ordinal);

        using var http = new HttpClient { BaseAddress = gateway.BaseAddress };
        http.DefaultRequestHeaders.Add("X-API-Key", GatewayApp.OperatorKey);
        await using var device = await TestMqttClient.ConnectAsync(broker, "blogger");
        await device.SubscribeAsync("blog/cmd/req/blogger");
        await device.PublishAsync("blog/register/blogger", "SIGN_IN", retain: true);
        await device.PublishAsync(TopicRoots.Default.For("blogger").Data, """{"temp":1}""");
        await device.PublishAsync("blog/data/blogger", """{"temp":2}""");

        // 404 until the gateway has stored something from the device.
        var seen = await Eventually.UntilAsync(async () =>
        {
            using var response = await http.GetAsync("/api/devices/blogger");
            return response.IsSuccessStatusCode
                && await response.Content.ReadFromJsonAsync<DeviceView>(GatewayApp.Json) is { SignedIn: true, TelemetryCount: 1 } d ? d : null;
        }, Timeout, "presence and the reading on the article's topics are stored, the default topic is not heard");
        Assert.Equal(1, seen.TelemetryCount);

        var post = await http.PostAsJsonAsync("/api/devices/blogger/commands", new { command = "PING" });
        var queued = await post.Content.ReadFromJsonAsync<QueuedCommand>(GatewayApp.Json);
        var request = await device.WaitForMessageAsync(m => m.Topic == "blog/cmd/req/blogger", Timeout);
        Assert.Equal(queued!.Id.ToString(), JsonDocument.Parse(request.Payload).RootElement.GetProperty("uuid").GetString());
        await device.PublishAsync("blog/cmd/resp/blogger", GatewayEndToEndTests.ArticleAnswer("blogger", queued.Id, "PING", "PONG"));
        var done = await Eventually.UntilAsync(async () =>
            await http.GetFromJsonAsync<CommandView>($"/api/commands/{queued.Id}", GatewayApp.Json) is { Status: CommandStatus.Completed } c ? c : null,
            Timeout, "the answer on the article's response topic completes the command");
        Assert.Equal("PONG", done.Result?.GetString());

        // By now everything the device sent has been through the gateway: the reading on iot/data was never heard.
        Assert.Equal(1, (await http.GetFromJsonAsync<DeviceView>("/api/devices/blogger", GatewayApp.Json))!.TelemetryCount);
    }
}
