using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace IotGateway.Tests.WebConsole;

// What devices and people can put in front of the console: markup in the text devices and operators write, an address
// that is not valid percent-encoding, and an id search under the API's rule. Everything is stored through the real
// gateway (MQTT devices on its embedded broker, commands through its API) and read back in a real Chromium.
[Collection(BrowserCollection.Name)]
public sealed class ConsoleHostileInputTests(Chromium chromium)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    // Each would set window.injected if the console ever parsed device text as HTML.
    private const string Img = """<img src=x onerror="window.injected='img'">""";
    private const string Script = "<script>window.injected='script'</script>";
    private const string Svg = "\"><svg onload=\"window.injected='svg'\">";

    // Injected elements outside the console's own markup (the chart is the console's only SVG).
    private const string InjectedCheck = """
        () => ({
          injected: window.injected ?? null,
          elements: [...document.querySelectorAll("img, script:not([type=module]), svg:not(.chart), [onerror], [onload]")]
            .map((e) => e.outerHTML.slice(0, 80)),
        })
        """;

    [SkippableFact]
    public async Task MarkupInReadingsCommandsAndAnswersIsShownAsTextOnEveryPage()
    {
        Skip.If(chromium.Browser is null, Chromium.SkipReason);
        const string id = "odd:@~.1";
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync(kestrel: true);
        await using var _ = gateway;
        await using var device = await ConsoleBrowserTests.SignedInDeviceAsync(gateway, port, id);
        var topics = TopicRoots.Default.For(id);
        await using var tab = await chromium.OpenAsync(gateway.BaseAddress);
        var problems = WatchForProblems(tab.Page);
        await tab.SignInAsync(GatewayApp.OperatorKey);
        await Expect(tab.Page.GetByText("Live updates: on")).ToBeVisibleAsync();

        // Live, on the fleet page: a text reading.
        var fleetRow = tab.Page.Locator("table.devices tbody tr").Filter(new() { Has = tab.Link(id) });
        await device.PublishAsync(topics.Data, Img, MqttQualityOfServiceLevel.AtLeastOnce);
        await Expect(fleetRow).ToContainTextAsync(Img);
        await AssertNothingInjectedAsync(tab.Page, problems);

        // Live, on the device page: a JSON reading (markup in a value and in a field name), a command whose name and
        // payload are markup, and the device's answer.
        await tab.Link(id).ClickAsync();
        var latest = tab.Region("Latest reading");
        await Expect(latest).ToContainTextAsync(Img);
        await device.PublishAsync(topics.Data, $$"""{"temp":22.5,"note":"{{Script}}","<b>bold</b>":1}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await Expect(latest).ToContainTextAsync(Script);
        var readings = tab.Page.Locator("table.readings");
        await Expect(readings).ToContainTextAsync(Script);
        await Expect(readings).ToContainTextAsync(Img);
        // Only a field name that is a plain word becomes a chart label.
        await Expect(tab.Page.Locator("#field option")).ToHaveTextAsync(["temp"]);
        await Expect(tab.Page.Locator("figure.chart-box figcaption")).ToContainTextAsync("temp: average per");

        var queued = await gateway.QueueCommandAsync(id, new { command = Img, payload = new { note = Svg } });
        await device.WaitForMessageAsync(m => m.Topic == topics.CommandRequest && m.Payload.Contains(queued.Id.ToString(), StringComparison.Ordinal), Timeout);
        await device.PublishAsync(topics.CommandResponse, GatewayEndToEndTests.ArticleAnswer(id, queued.Id, Img, Svg));
        var commandRow = tab.Page.Locator($"tr[data-command='{queued.Id}']");
        await Expect(commandRow).ToContainTextAsync("Completed");
        await Expect(commandRow.Locator("td[data-label='Command'] code")).ToHaveTextAsync(Img);
        await Expect(commandRow.Locator("td[data-label='Result']")).ToHaveTextAsync(Svg);
        await AssertNothingInjectedAsync(tab.Page, problems);

        // Read again from the API: the device page as loaded, the bulk page of a batch, and the fleet.
        await tab.Page.ReloadAsync();
        await Expect(latest).ToContainTextAsync(Script);
        await Expect(readings).ToContainTextAsync(Img);
        await Expect(commandRow.Locator("td[data-label='Result']")).ToHaveTextAsync(Svg);
        await Expect(commandRow.Locator("td[data-label='Command']")).ToContainTextAsync("<svg onload="); // the payload, as JSON
        await AssertNothingInjectedAsync(tab.Page, problems);

        var bulk = await gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { deviceIds = new[] { id }, command = Script });
        bulk.EnsureSuccessStatusCode();
        var batchId = (await bulk.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("batchId").GetString();
        await tab.Page.GotoAsync($"/#/bulk/{batchId}");
        await Expect(tab.Page.Locator(".batch tbody tr")).ToContainTextAsync(Script);

        await tab.Link("Fleet").ClickAsync();
        await Expect(fleetRow.Locator("td[data-label='Latest reading']")).ToContainTextAsync(Script);
        await AssertNothingInjectedAsync(tab.Page, problems);
    }

    [SkippableFact]
    public async Task AnAddressThatIsNotValidPercentEncodingSaysSoWithoutAScriptError()
    {
        Skip.If(chromium.Browser is null, Chromium.SkipReason);
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, kestrel: true);
        await using var tab = await chromium.OpenAsync(gateway.BaseAddress);
        var problems = WatchForProblems(tab.Page);
        await tab.SignInAsync(GatewayApp.OperatorKey);
        await Expect(tab.Page.GetByRole(AriaRole.Heading, new() { Name = "Fleet" })).ToBeVisibleAsync();
        var heading = tab.Page.GetByRole(AriaRole.Heading, new() { Name = "Not a valid device address" });

        // Followed from the open console, then loaded afresh.
        await tab.Page.GotoAsync("/#/devices/%E0");
        await Expect(heading).ToBeVisibleAsync();
        await Expect(tab.Page.Locator("main")).ToContainTextAsync("%E0");
        await tab.Page.ReloadAsync();
        await Expect(heading).ToBeVisibleAsync();

        await tab.Link("Go to the fleet").ClickAsync();
        await Expect(tab.Page.GetByRole(AriaRole.Heading, new() { Name = "Fleet" })).ToBeVisibleAsync();
        lock (problems)
        {
            Assert.Empty(problems);
        }
    }

    // The API folds A–Z only (GET /api/devices?search=); the fleet page decides by the same rule whether a device
    // that appears while a search is typed belongs on it. "ΟΔΟΣ-1" holds "Σ", but toLowerCase() makes it "οδος-1",
    // which holds no "σ".
    [SkippableFact]
    public async Task ADeviceThatAppearsWhileSearchingIsShownWhenTheApiRuleMatchesIt()
    {
        Skip.If(chromium.Browser is null, Chromium.SkipReason);
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync(kestrel: true);
        await using var _ = gateway;
        await using var tab = await chromium.OpenAsync(gateway.BaseAddress);
        await tab.SignInAsync(GatewayApp.OperatorKey);
        await Expect(tab.Page.GetByText("Live updates: on")).ToBeVisibleAsync();
        await tab.Field("Device id contains").FillAsync("Σ");
        await Expect(tab.Page.GetByText("No device matches these filters.")).ToBeVisibleAsync();

        await using var device = await ConsoleBrowserTests.SignedInDeviceAsync(gateway, port, "ΟΔΟΣ-1");
        await Expect(tab.Link("ΟΔΟΣ-1")).ToBeVisibleAsync();
    }

    private static List<string> WatchForProblems(IPage page)
    {
        var problems = new List<string>();
        page.PageError += (_, error) =>
        {
            lock (problems)
            {
                problems.Add($"page error: {error}");
            }
        };
        page.Console += (_, message) =>
        {
            // A refused request (the readiness check's 503 without a broker) is logged too; it is not a script error.
            if (message.Type == "error" && !message.Text.StartsWith("Failed to load resource", StringComparison.Ordinal))
            {
                lock (problems)
                {
                    problems.Add($"console error: {message.Text}");
                }
            }
        };
        page.Dialog += (_, dialog) =>
        {
            lock (problems)
            {
                problems.Add($"dialog: {dialog.Message}");
            }

            _ = dialog.DismissAsync();
        };
        return problems;
    }

    private static async Task AssertNothingInjectedAsync(IPage page, List<string> problems)
    {
        var found = await page.EvaluateAsync<JsonElement>(InjectedCheck);
        Assert.Equal(JsonValueKind.Null, found.GetProperty("injected").ValueKind);
        Assert.Empty(found.GetProperty("elements").EnumerateArray().Select(e => e.GetString()));
        lock (problems)
        {
            Assert.Empty(problems);
        }
    }
}
