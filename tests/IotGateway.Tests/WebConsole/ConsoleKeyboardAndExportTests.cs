using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace IotGateway.Tests.WebConsole;

// What the README's web console section promises beyond the main path: it "can be used with the keyboard alone", a
// Cancel button for unanswered commands, and CSV and NDJSON export of the readings.
[Collection(BrowserCollection.Name)]
public sealed class ConsoleKeyboardAndExportTests(Chromium chromium)
{
    // With no broker to hand them to, commands stay Pending: the state in which a person reaches for Cancel.
    [SkippableFact]
    public async Task WithTheKeyboardAlonePersonSignsInOpensADeviceSendsACommandAndCancelsIt()
    {
        Skip.If(chromium.Browser is null, Chromium.SkipReason);
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, kestrel: true);
        ConsoleBrowserTests.SeedDevices(gateway.DatabasePath, 1);
        await using var tab = await chromium.OpenAsync(gateway.BaseAddress);
        var keyboard = tab.Page.Keyboard;

        await tab.Page.GotoAsync("/");
        await Expect(tab.Field("API key")).ToBeFocusedAsync();
        await keyboard.TypeAsync(GatewayApp.OperatorKey);
        await keyboard.PressAsync("Enter");

        await TabToAsync(tab.Page, tab.Link("dev-00000"));
        await keyboard.PressAsync("Enter");
        await Expect(tab.Page).ToHaveURLAsync(new Regex("#/devices/dev-00000$"));

        await TabToAsync(tab.Page, tab.Field("Command"));
        await keyboard.TypeAsync("PING");
        await TabToAsync(tab.Page, tab.Button("Send"));
        await keyboard.PressAsync("Enter");
        var row = tab.Page.Locator("tr[data-command]");
        await Expect(row).ToContainTextAsync("Pending");
        var id = Guid.Parse((await row.GetAttributeAsync("data-command"))!);

        await TabToAsync(tab.Page, tab.Page.GetByRole(AriaRole.Button, new() { NameRegex = new Regex("^Cancel PING queued") }));
        await keyboard.PressAsync("Enter");
        await Expect(row.Locator("td[data-label='Status']")).ToHaveTextAsync("Cancelled");
        Assert.Equal(CommandStatus.Cancelled, (await gateway.GetCommandAsync(id)).Status);
        await Expect(row.GetByRole(AriaRole.Button)).ToHaveCountAsync(0);
    }

    [SkippableFact]
    public async Task ExportButtonsDownloadTheStoredReadingsAsCsvAndNdjson()
    {
        Skip.If(chromium.Browser is null, Chromium.SkipReason);
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync(kestrel: true);
        await using var _ = gateway;
        await using var device = await ConsoleBrowserTests.SignedInDeviceAsync(gateway, port, "exp-1");
        var data = TopicRoots.Default.For("exp-1").Data;
        await device.PublishAsync(data, """{"temp":22.75,"messageId":"e-2"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        await device.PublishAsync(data, "door \"open\", ok", MqttQualityOfServiceLevel.AtLeastOnce);
        await gateway.WaitForDeviceAsync("exp-1", d => d.TelemetryCount == 3, "three readings are stored");
        await using var tab = await chromium.OpenAsync(gateway.BaseAddress);
        await tab.SignInAsync(GatewayApp.OperatorKey);
        await tab.Link("exp-1").ClickAsync();
        await Expect(tab.Page.Locator("table.readings tbody tr")).ToHaveCountAsync(3);

        var csv = await tab.Page.RunAndWaitForDownloadAsync(() => tab.Button("Export CSV").ClickAsync());
        Assert.Matches(@"^exp-1-telemetry-\d{8}T\d{6}Z-\d{8}T\d{6}Z\.csv$", csv.SuggestedFilename);
        var lines = (await File.ReadAllTextAsync((await csv.PathAsync())!)).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("id,deviceId,receivedAt,topic,format,messageKey,payload", lines[0]);
        Assert.Equal(4, lines.Length);
        Assert.Contains("{\"\"temp\"\":21.5", lines[1], StringComparison.Ordinal);
        Assert.Contains("{\"\"temp\"\":22.75", lines[2], StringComparison.Ordinal);
        Assert.EndsWith("\"door \"\"open\"\", ok\"", lines[3], StringComparison.Ordinal);
        await Expect(tab.Page.GetByText($"Saved {csv.SuggestedFilename}.")).ToBeVisibleAsync();

        // The other one from the keyboard: Tab onto it, Enter.
        await tab.Button("Export CSV").FocusAsync();
        var ndjson = await tab.Page.RunAndWaitForDownloadAsync(async () =>
        {
            await TabToAsync(tab.Page, tab.Button("Export NDJSON"));
            await tab.Page.Keyboard.PressAsync("Enter");
        });
        Assert.EndsWith(".ndjson", ndjson.SuggestedFilename, StringComparison.Ordinal);
        var objects = (await File.ReadAllLinesAsync((await ndjson.PathAsync())!)).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, objects.Count);
        Assert.All(objects, o => Assert.Equal("exp-1", o.GetProperty("deviceId").GetString()));
        Assert.Equal(21.5, objects[0].GetProperty("payload").GetProperty("temp").GetDouble());
        Assert.Equal(22.75, objects[1].GetProperty("payload").GetProperty("temp").GetDouble());
        Assert.Equal("door \"open\", ok", objects[2].GetProperty("payload").GetString());
    }

    // Presses Tab until the target has the focus: it must be reachable in the page's tab order.
    private static async Task TabToAsync(IPage page, ILocator target, int most = 60)
    {
        await Expect(target).ToBeVisibleAsync();
        for (var presses = 1; presses <= most; presses++)
        {
            await page.Keyboard.PressAsync("Tab");
            if (await target.EvaluateAsync<bool>("e => e === document.activeElement"))
            {
                return;
            }
        }

        Assert.Fail($"{target} was not reached with {most} presses of Tab.");
    }
}
