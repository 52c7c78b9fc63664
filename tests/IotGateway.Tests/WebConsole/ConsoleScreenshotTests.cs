using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace IotGateway.Tests.WebConsole;

// The README's pictures of the console, from a real run: a small fleet on the embedded broker, an hour of readings,
// answered commands and a bulk PING. scripts/console-screenshots.sh runs this with CONSOLE_SCREENSHOTS=1 to write
// them into docs/; otherwise they go to a temporary folder (the test still drives every page).
[Collection(BrowserCollection.Name)]
public sealed class ConsoleScreenshotTests(Chromium chromium)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public async Task ScreenshotOfEachPage()
    {
        Skip.If(chromium.Browser is null, Chromium.SkipReason);
        var folder = Environment.GetEnvironmentVariable("CONSOLE_SCREENSHOTS") == "1"
            ? Path.Combine(Repository.Root, "docs")
            : Directory.CreateTempSubdirectory("iotgw-console-").FullName;
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync(kestrel: true);
        await using var _ = gateway;

        var devices = new List<TestMqttClient>();
        try
        {
            foreach (var id in new[] { "boiler-1", "fan-2", "pump-3", "sensor-1", "valve-7" })
            {
                devices.Add(await ConsoleBrowserTests.SignedInDeviceAsync(gateway, port, id));
            }

            var sensor = devices[3];
            var start = DateTimeOffset.UtcNow.AddMinutes(-60);
            SeededReadings.Insert(gateway.DatabasePath, "sensor-1", Enumerable.Range(0, 360).Select(i => new SeededReadings.Reading(
                start.AddSeconds(i * 10), $$"""{"temp":{{21 + 2.5 * Math.Sin(i / 30.0) + (i % 7) * 0.1:0.00}},"humidity":{{40 + i % 11}}}""")));
            SeededReadings.Insert(gateway.DatabasePath, "meter-9", [new(DateTimeOffset.UtcNow.AddDays(-2), """{"kwh":1532.4}""")]);
            await sensor.PublishAsync(TopicRoots.Default.For("sensor-1").Data, """{"temp":22.4,"humidity":43,"sensors":{"co2":612}}""", MqttQualityOfServiceLevel.AtLeastOnce);

            await using var tab = await chromium.OpenAsync(gateway.BaseAddress);
            await tab.SignInAsync(GatewayApp.OperatorKey);
            await Expect(tab.Page.Locator("tr[data-device='sensor-1']")).ToContainTextAsync("22.4");
            await Expect(tab.Page.GetByText("Live updates: on")).ToBeVisibleAsync();
            await tab.Page.GetByLabel("Select pump-3").CheckAsync();
            await tab.Page.GetByLabel("Select valve-7").CheckAsync();
            await Shoot(tab.Page, folder, "console-fleet.png");

            await tab.Link("sensor-1").ClickAsync();
            foreach (var (command, result) in new[] { ("GET_CONFIG", "{\"interval\":10}"), ("PING", "PONG") })
            {
                await tab.Field("Command").FillAsync(command);
                await tab.Button("Send").ClickAsync();
                var request = await sensor.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For("sensor-1").CommandRequest && m.Payload.Contains($"\"{command}\"", StringComparison.Ordinal), Timeout);
                var uuid = JsonDocument.Parse(request.Payload).RootElement.GetProperty("uuid").GetGuid();
                await sensor.PublishAsync(TopicRoots.Default.For("sensor-1").CommandResponse, GatewayEndToEndTests.ArticleAnswer("sensor-1", uuid, command, result));
                await Expect(tab.Page.GetByRole(AriaRole.Status, new() { Name = "Sent command" })).ToContainTextAsync("Completed");
            }

            await Expect(tab.Page.Locator("figure.chart-box svg polyline")).ToHaveCountAsync(1);
            await Shoot(tab.Page, folder, "console-device.png", fullPage: true);

            foreach (var device in devices)
            {
                device.ClearReceivedMessages(); // sensor-1's own PING is answered
            }

            await tab.Link("Bulk command").ClickAsync();
            await tab.Page.GetByLabel("All devices signed in now").CheckAsync();
            await tab.Field("Command").FillAsync("PING");
            await tab.Button("Send").ClickAsync();
            foreach (var device in devices)
            {
                var id = device.ClientId;
                var request = await device.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For(id).CommandRequest, Timeout);
                var uuid = JsonDocument.Parse(request.Payload).RootElement.GetProperty("uuid").GetGuid();
                await device.PublishAsync(TopicRoots.Default.For(id).CommandResponse, GatewayEndToEndTests.ArticleAnswer(id, uuid, "PING", id == "fan-2" ? "ERROR_BUSY" : "PONG"));
            }

            await Expect(tab.Page.Locator("#batch-progress")).ToContainTextAsync("5 of 5 finished — done");
            await Shoot(tab.Page, folder, "console-bulk.png", fullPage: true);

            await tab.Link("Fleet").ClickAsync();
            await tab.Page.SetViewportSizeAsync(390, 844);
            await Expect(tab.Link("sensor-1")).ToBeVisibleAsync();
            await Shoot(tab.Page, folder, "console-phone.png");
        }
        finally
        {
            foreach (var device in devices)
            {
                await device.DisposeAsync();
            }
        }
    }

    private static async Task Shoot(IPage page, string folder, string name, bool fullPage = false)
    {
        // Relative times ("3 s ago") are what a person sees; the status line is waited for so it is not mid-change.
        await Expect(page.Locator("#health")).ToContainTextAsync("Live updates: on");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(folder, name), FullPage = fullPage, Animations = ScreenshotAnimations.Disabled });
        Assert.True(new FileInfo(Path.Combine(folder, name)).Length > 10_000, $"{name} is a real picture");
    }
}
