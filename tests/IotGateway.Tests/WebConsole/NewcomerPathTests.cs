using System.Text.RegularExpressions;
using IotGateway.Tests.Simulator;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace IotGateway.Tests.WebConsole;

// The README's newcomer path, as a person would walk it with nothing else read first: start the built gateway in an
// empty folder with no settings, open the address it prints, paste the key it prints, start the simulator, send a
// command. (Free ports instead of 5000 and 1883, which other runs on this machine may hold.)
[Collection(BrowserCollection.Name)]
public sealed partial class NewcomerPathTests(Chromium chromium, ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task PrintedAddressAndKeyOpenTheConsoleWhereTheSimulatorAnswersAPing()
    {
        Skip.If(chromium.Browser is null, Chromium.SkipReason);
        var folder = Directory.CreateTempSubdirectory("iotgw-newcomer-").FullName;
        var mqttPort = FreePort.OnLoopback();
        await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, folder, new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{FreePort.OnLoopback()}",
            ["Mqtt__Embedded__Port"] = mqttPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        await gateway.WaitUntilListeningAsync(Timeout);

        var consoleLine = await Eventually.UntilAsync(() => Task.FromResult(gateway.Output.FirstOrDefault(l => l.Contains("First run: open the web console at", StringComparison.Ordinal))),
            Timeout, "the gateway says where the console is and to paste the key");
        var address = ConsoleAddress().Match(consoleLine).Groups[1].Value;
        var key = PrintedKey().Match(string.Join('\n', gateway.Output)).Groups[1].Value;
        output.WriteLine(consoleLine);
        Assert.NotEmpty(key);

        await using var simulator = SimulatorProcess.Start("--broker", $"mqtt://127.0.0.1:{mqttPort}", "--interval", "2", "--online", "1");
        await using var tab = await chromium.OpenAsync(new Uri(address));
        await tab.Page.GotoAsync(address);
        await tab.Field("API key").FillAsync(key);
        await tab.Button("Use this key").ClickAsync();

        // The simulated device appears by itself, signs in and out with its connection windows.
        try
        {
            await tab.Link("sim-iot-device-0001").ClickAsync(new() { Timeout = (float)Timeout.TotalMilliseconds });
        }
        catch
        {
            await tab.Page.ScreenshotAsync(new() { Path = "/tmp/newcomer-fail.png", FullPage = true });
            output.WriteLine(simulator.Output);
            output.WriteLine(string.Join('\n', gateway.Output));
            throw;
        }

        await Expect(tab.Region("Latest reading")).ToContainTextAsync("temp");
        await tab.Field("Command").FillAsync("PING");
        await tab.Button("Send").ClickAsync();
        var sent = tab.Page.GetByRole(AriaRole.Status, new() { Name = "Sent command" });
        await Expect(sent).ToContainTextAsync("Completed", new() { Timeout = (float)Timeout.TotalMilliseconds });
        await Expect(sent).ToContainTextAsync("PONG");
        await tab.Page.ScreenshotAsync(new() { Path = Path.Combine(folder, "newcomer.png"), FullPage = true });
        output.WriteLine($"screenshot: {Path.Combine(folder, "newcomer.png")}");
    }

    [GeneratedRegex(@"open the web console at (\S+) and paste")]
    private static partial Regex ConsoleAddress();

    [GeneratedRegex(@"It is shown only this once: ([A-Za-z0-9_-]+)\.")]
    private static partial Regex PrintedKey();
}
