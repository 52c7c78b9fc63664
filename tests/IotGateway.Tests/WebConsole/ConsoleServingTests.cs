using IotGateway.Security;
using IotGateway.WebConsole;

namespace IotGateway.Tests.WebConsole;

// What the console needs from the gateway, without a browser: its files at / without a key, GET /api/me, the id search
// of GET /api/devices (below, on both databases), and a start-up log that says where the console is.
public sealed class ConsoleServingTests
{
    [Fact]
    public async Task RootServesTheConsoleWithoutAKeyWhileTheApiStillNeedsOne()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        using var anonymous = gateway.CreateClient(apiKey: null);

        var page = await anonymous.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("""<script type="module" src="js/main.js"></script>""", html, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.Equal("no-cache", page.Headers.CacheControl?.ToString());

        foreach (var file in new[] { "js/main.js", "js/api.js", "js/live.js", "js/fleet.js", "js/device.js", "js/bulk.js", "js/chart.js", "js/commandform.js", "js/dom.js", "js/state.js" })
        {
            var script = await anonymous.GetAsync($"/{file}");
            Assert.True(script.StatusCode == HttpStatusCode.OK, $"{file}: {(int)script.StatusCode}");
            Assert.Equal("text/javascript", script.Content.Headers.ContentType?.MediaType);
        }

        Assert.Equal("text/css", (await anonymous.GetAsync("/app.css")).Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/devices")).StatusCode);

        // Nothing the page loads comes from elsewhere: no absolute URL in its files.
        foreach (var file in new[] { "index.html", "app.css", "js/main.js", "js/live.js", "js/chart.js" })
        {
            var text = await anonymous.GetStringAsync($"/{file}");
            Assert.DoesNotMatch(@"(src|href)\s*=\s*[""']?(https?:)?//", text);
        }
    }

    [Fact]
    public async Task ConsoleFilesAreRevalidatedWithTheirETag()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        using var anonymous = gateway.CreateClient(apiKey: null);
        var first = await anonymous.GetAsync("/js/main.js");
        using var again = new HttpRequestMessage(HttpMethod.Get, "/js/main.js");
        again.Headers.IfNoneMatch.Add(first.Headers.ETag!);
        Assert.Equal(HttpStatusCode.NotModified, (await anonymous.SendAsync(again)).StatusCode);
    }

    [Fact]
    public async Task MeNamesTheKeyAndWhatItMayDo()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);

        var operatorKey = await gateway.Http.GetFromJsonAsync<KeyView>("/api/me", GatewayApp.Json);
        Assert.Equal(new KeyView("test-operator", ApiRole.Operator, true), operatorKey);
        using var reader = gateway.CreateClient(GatewayApp.ReaderKey);
        Assert.Equal(new KeyView("test-reader", ApiRole.Reader, false), await reader.GetFromJsonAsync<KeyView>("/api/me", GatewayApp.Json));

        using var wrong = gateway.CreateClient("a-key-nobody-configured-0000");
        var refused = await wrong.GetAsync("/api/me");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("does not hold a valid key", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var none = gateway.CreateClient(apiKey: null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await none.GetAsync("/api/me")).StatusCode);
    }

    [Fact]
    public async Task StartUpLogSaysWhereTheConsoleIsAndOnFirstRunToPasteThePrintedKey()
    {
        await using var configured = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, kestrel: true);
        await Eventually.UntilAsync(() => configured.Logs.Contains($"Web console: open {configured.BaseAddress} in a browser and paste an API key"),
            TimeSpan.FromSeconds(10), "the console's address is logged");

        await using var firstRun = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", s =>
        {
            foreach (var key in s.Keys.Where(k => k.StartsWith("Api:Keys:", StringComparison.Ordinal)).ToList())
            {
                s.Remove(key);
            }

            s["Api:GeneratedKeyFile"] = Path.Combine(Path.GetTempPath(), $"iotgw-key-{Guid.NewGuid():N}");
        }, waitUntilReady: false, kestrel: true);
        await Eventually.UntilAsync(() => firstRun.Logs.Contains($"First run: open the web console at {firstRun.BaseAddress} and paste the API key printed above"), TimeSpan.FromSeconds(10),
            "the first run says where to paste the key");
        Assert.True(firstRun.Logs.Contains("Paste it into the web console's API key field"), string.Join(Environment.NewLine, firstRun.Logs.Lines));
    }

    [Theory]
    [InlineData("http://localhost:5000", "http://localhost:5000/")]
    [InlineData("http://0.0.0.0:8080", "http://localhost:8080/")]
    [InlineData("http://[::]:5000", "http://localhost:5000/")]
    [InlineData("http://+:80", "http://localhost/")]
    [InlineData("https://*:5001", "https://localhost:5001/")]
    [InlineData("http://127.0.0.1:40123", "http://127.0.0.1:40123/")]
    public void ConsoleUrlIsOneABrowserCanOpen(string listening, string expected) =>
        Assert.Equal(expected, WebConsoleSetup.ConsoleUrl(listening));
}

// The console's device search is a query of the database's own (case, LIKE's wildcards, collation): on both.
public sealed class SqliteConsoleDeviceSearchTests : ConsoleDeviceSearchTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresConsoleDeviceSearchTests : ConsoleDeviceSearchTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class ConsoleDeviceSearchTests
{
    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task DeviceSearchFindsIdsContainingTheTextIgnoringCaseAndPagesThem()
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, provider: Provider);
        foreach (var id in new[] { "Pump-1", "pump-2", "fan-1", "big-PUMP", "pum", "100%_pump" })
        {
            SeededReadings.Insert(gateway.Storage, id, []);
        }

        Assert.Equal(["100%_pump", "Pump-1", "big-PUMP", "pump-2"], await IdsAsync(gateway, "/api/devices?search=pUmP"));
        Assert.Equal(["100%_pump"], await IdsAsync(gateway, "/api/devices?search=%25_"));
        Assert.Empty(await IdsAsync(gateway, "/api/devices?search=pump&signedIn=true"));

        // Paged with the cursor like the whole list.
        var first = await gateway.Http.GetFromJsonAsync<Page<DeviceView>>("/api/devices?search=pump&limit=3", GatewayApp.Json);
        Assert.Equal(["100%_pump", "Pump-1", "big-PUMP"], first!.Items.Select(d => d.Id));
        var second = await gateway.Http.GetFromJsonAsync<Page<DeviceView>>($"/api/devices?search=pump&limit=3&cursor={first.NextCursor}", GatewayApp.Json);
        Assert.Equal(["pump-2"], second!.Items.Select(d => d.Id));
        Assert.Null(second.NextCursor);

        var tooLong = await gateway.Http.GetAsync($"/api/devices?search={new string('x', 129)}");
        Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
    }

    private static async Task<IReadOnlyList<string>> IdsAsync(GatewayApp gateway, string path)
    {
        var page = await gateway.Http.GetFromJsonAsync<JsonElement>(path, GatewayApp.Json);
        return [.. page.GetProperty("items").EnumerateArray().Select(d => d.GetProperty("id").GetString()!)];
    }
}
