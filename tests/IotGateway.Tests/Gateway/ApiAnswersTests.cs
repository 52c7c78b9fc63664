using System.Text.RegularExpressions;

namespace IotGateway.Tests.Gateway;

// What a newcomer meets in the API's answers: times in one form (UTC, Z, milliseconds) and accepted in the forms
// people paste, a 404 for a path that does not exist whatever the key, and a command's result as the JSON it was.
public sealed partial class ApiAnswersTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task EveryTimeInAnAnswerIsUtcWithZToTheMillisecond()
    {
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync();
        await using var _ = gateway;
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, "clock-1");
        await device.PublishAsync(TopicRoots.Default.For("clock-1").Register, "SIGN_IN", retain: true);
        await device.PublishAsync(TopicRoots.Default.For("clock-1").Data, """{"temp":21.5}""");
        await gateway.WaitForDeviceAsync("clock-1", d => d is { SignedIn: true, TelemetryCount: 1 }, "the reading is stored");
        var queued = await gateway.QueueCommandAsync("clock-1", new { command = "PING" });

        foreach (var path in new[] { "/api/devices/clock-1", "/api/devices/clock-1/telemetry", $"/api/commands/{queued.Id}", "/api/devices" })
        {
            var body = await gateway.Http.GetStringAsync(path);
            var times = Times(JsonDocument.Parse(body).RootElement).ToList();
            Assert.NotEmpty(times);
            Assert.All(times, t => Assert.Matches(UtcMilliseconds(), t));
            Assert.DoesNotContain("+00:00", body, StringComparison.Ordinal);
        }
    }

    // The same form where the API streams: the live events and both export formats.
    [Fact]
    public async Task LiveEventsAndExportsWriteTimesInUtcWithZToo()
    {
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync();
        await using var _ = gateway;
        await using var events = await EventStreamClient.OpenAsync(gateway.Http, "/api/events?deviceId=clock-2");
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, "clock-2");
        await device.PublishAsync(TopicRoots.Default.For("clock-2").Register, "SIGN_IN", retain: true);
        await device.PublishAsync(TopicRoots.Default.For("clock-2").Data, """{"temp":21.5}""");
        await gateway.WaitForDeviceAsync("clock-2", d => d is { SignedIn: true, TelemetryCount: 1 }, "the reading is stored");
        await gateway.QueueCommandAsync("clock-2", new { command = "PING" });

        foreach (var type in new[] { "presence", "reading", "command" })
        {
            var (data, _) = await events.WaitForAsync(e => e.GetProperty("type").GetString() == type, Timeout, $"a {type} event arrives");
            var times = Times(data).Concat(data.TryGetProperty("at", out var at) ? [at.GetString()!] : Array.Empty<string>()).ToList();
            Assert.NotEmpty(times);
            Assert.All(times, t => Assert.Matches(UtcMilliseconds(), t));
        }

        var ndjson = await gateway.Http.GetStringAsync("/api/devices/clock-2/telemetry/export?format=ndjson");
        Assert.Matches(UtcMilliseconds(), JsonDocument.Parse(ndjson.Split('\n')[0]).RootElement.GetProperty("receivedAt").GetString());
        var csv = Csv.Parse(await gateway.Http.GetStringAsync("/api/devices/clock-2/telemetry/export?format=csv"));
        Assert.Matches(UtcMilliseconds(), csv[1][2]);
    }

    [Theory]
    [InlineData("2026-11-24T08:53:00Z", "2026-11-24T08:53:00.000Z")]
    [InlineData("2026-11-24T08:53:00.1234567Z", "2026-11-24T08:53:00.124Z")] // compared as shown: from the next millisecond
    [InlineData("2026-11-24T08:53:00.123Z", "2026-11-24T08:53:00.123Z")]
    [InlineData("2026-11-24T09:53:00+01:00", "2026-11-24T08:53:00.000Z")]
    [InlineData("2026-11-24T09:53:00 01:00", "2026-11-24T08:53:00.000Z")] // the '+' of an unencoded URL, decoded to a space
    [InlineData("2026-11-24T03:53:00-0500", "2026-11-24T08:53:00.000Z")]
    [InlineData("2026-11-24T08:53:00", "2026-11-24T08:53:00.000Z")] // no offset: UTC
    [InlineData("2026-11-24", "2026-11-24T00:00:00.000Z")]
    [InlineData("1795510380", "2026-11-24T08:53:00.000Z")] // Unix seconds
    [InlineData("1795510380123", "2026-11-24T08:53:00.123Z")] // Unix milliseconds
    [InlineData("99999999999", "5138-11-16T09:46:39.000Z")] // the largest number read as seconds
    [InlineData("100000000000", "1973-03-03T09:46:40.000Z")] // the smallest read as milliseconds
    public void TimeParametersAcceptIsoWithOffsetsAndUnixTime(string given, string meant)
    {
        Assert.True(ApiTime.TryParse(given, out var time), given);
        Assert.Equal(meant, ApiTime.ToText(time));
    }

    [Theory]
    [InlineData("yesterday")]
    [InlineData("11/24/2026")]
    [InlineData("2026-13-01T00:00:00Z")]
    [InlineData("-5")]
    [InlineData("99999999999999999999")]
    public void WhatIsNotATimeIsRefused(string given) => Assert.False(ApiTime.TryParse(given, out _), given);

    [Fact]
    public async Task TimeRangesTakeTheFormsPeoplePasteAndNameTheParameterTheyRefuse()
    {
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync();
        await using var _ = gateway;
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, "range-1");
        await device.PublishAsync(TopicRoots.Default.For("range-1").Data, """{"temp":21.5}""");
        await gateway.WaitForDeviceAsync("range-1", d => d.TelemetryCount == 1, "the reading is stored");
        var received = JsonDocument.Parse(await gateway.Http.GetStringAsync("/api/devices/range-1/telemetry"))
            .RootElement.GetProperty("items")[0].GetProperty("receivedAt").GetString()!;
        var at = DateTimeOffset.Parse(received, System.Globalization.CultureInfo.InvariantCulture);

        // The reading's own time pasted back unencoded ('+' becomes a space), with an offset, or as Unix time.
        var before = at.AddHours(-1);
        var after = at.AddHours(1);
        string[] froms =
        [
            before.ToOffset(TimeSpan.FromHours(2)).ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz", System.Globalization.CultureInfo.InvariantCulture),
            Uri.EscapeDataString(before.ToOffset(TimeSpan.FromHours(2)).ToString("yyyy-MM-dd'T'HH:mm:ss.fffzzz", System.Globalization.CultureInfo.InvariantCulture)),
            before.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
            before.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture),
            received,
        ];
        foreach (var from in froms)
        {
            Assert.Equal(1, await CountAsync(gateway, $"from={from}&to={after.ToUnixTimeMilliseconds()}"));
        }

        Assert.Equal(0, await CountAsync(gateway, $"to={received}"));

        using var refused = await gateway.Http.GetAsync("/api/devices/range-1/telemetry?from=2026-11-24&to=yesterday");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        var errors = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("errors");
        Assert.Contains("to is not a time: 'yesterday'", errors.GetProperty("to")[0].GetString(), StringComparison.Ordinal);
        Assert.False(errors.TryGetProperty("from", out var _), "from was a good value");
    }

    [Fact]
    public async Task AnUnknownPathIsA404WhateverTheKey()
    {
        var (gateway, _) = await GatewayApp.StartEmbeddedAsync();
        await using var app = gateway;
        foreach (var key in new[] { null, "not-a-key-at-all-0123456789", GatewayApp.ReaderKey, GatewayApp.OperatorKey })
        {
            using var http = gateway.CreateClient(key);
            foreach (var path in new[] { "/nope", "/api/nope", "/api/devices/d/nope", "/swagger/v2/nope.json" })
            {
                using var response = await http.GetAsync(path);
                Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"GET {path} with key {key ?? "(none)"}: {(int)response.StatusCode}");
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            }
        }

        // A route that exists still wants its key.
        using var anonymous = gateway.CreateClient(null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/devices")).StatusCode);

        // The root is not a 401: the web console lives there and asks for a key itself.
        using var browser = gateway.CreateClient(null, followRedirects: false);
        using var root = await browser.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, root.StatusCode);
        Assert.Equal("text/html", root.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task ACommandsResultIsTheJsonTheDeviceSent()
    {
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync();
        await using var _ = gateway;
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, "answers-1");
        await device.SubscribeAsync(TopicRoots.Default.For("answers-1").CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For("answers-1").Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("answers-1", d => d.SignedIn, "the device is known");

        var results = new Dictionary<string, string>
        {
            ["GET_CONFIG"] = """{"intervalSeconds":15,"topics":{"data":"iot/data"}}""",
            ["PING"] = "\"PONG\"",
            ["ECHO"] = "\"{\\\"looks\\\":\\\"like JSON\\\"}\"", // a string that holds JSON text stays a string
            ["COUNT"] = "42",
        };
        foreach (var (command, result) in results)
        {
            var queued = await gateway.QueueCommandAsync("answers-1", new { command });
            await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString(), StringComparison.Ordinal), Timeout);
            await device.PublishAsync(TopicRoots.Default.For("answers-1").CommandResponse,
                $$"""{"deviceId":"answers-1","messageType":"commandResp","commandResult":{{result}},"uuid":"{{queued.Id}}","command":"{{command}}"}""");
            await gateway.WaitForCommandAsync(queued.Id, Data.CommandStatus.Completed);

            var view = JsonDocument.Parse(await gateway.Http.GetStringAsync($"/api/commands/{queued.Id}")).RootElement;
            Assert.Equal(JsonDocument.Parse(result).RootElement.GetRawText(), view.GetProperty("result").GetRawText());
            Assert.Equal(view.GetProperty("response").GetProperty("commandResult").GetRawText(), view.GetProperty("result").GetRawText());
        }
    }

    private static async Task<int> CountAsync(GatewayApp gateway, string query)
    {
        using var response = await gateway.Http.GetAsync($"/api/devices/range-1/telemetry?{query}");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"?{query}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("items").GetArrayLength();
    }

    // Every string in the answer whose property name ends in "At" or is lastSeen/firstSeen.
    private static IEnumerable<string> Times(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            return element.EnumerateArray().SelectMany(Times);
        }

        if (element.ValueKind != JsonValueKind.Object)
        {
            return [];
        }

        return element.EnumerateObject().SelectMany(p =>
            (p.Name.EndsWith("At", StringComparison.Ordinal) || p.Name.EndsWith("Seen", StringComparison.Ordinal)) && p.Value.ValueKind == JsonValueKind.String
                ? [p.Value.GetString()!]
                : Times(p.Value));
    }

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")]
    private static partial Regex UtcMilliseconds();
}
