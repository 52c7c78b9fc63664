using Microsoft.Playwright;

namespace IotGateway.Tests.WebConsole;

// One headless Chromium for every browser test of the run: Debian's package at /usr/bin/chromium, driven by Playwright,
// never a browser downloaded at run time. Each test opens its own context (Playwright gives each launch a fresh
// temporary profile, and each context its own storage) and its own pages.
public sealed class Chromium : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    // Ceilings for a loaded 2-core machine, not expectations.
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private IPlaywright? _playwright;

    static Chromium()
    {
        Assertions.SetDefaultExpectTimeout((float)Timeout.TotalMilliseconds);
    }

    public IBrowser? Browser { get; private set; }

    // Null when the browser tests must run: Chromium is installed, or CI=true (where a missing one fails).
    public static string? SkipReason => File.Exists(ExecutablePath) || Requires.IsCi
        ? null
        : $"Needs Chromium at {ExecutablePath} (apt-get install chromium; CI=true makes this a failure instead of a skip).";

    public async Task InitializeAsync()
    {
        if (SkipReason is not null)
        {
            return;
        }

        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        _playwright = await Playwright.CreateAsync();
        List<string> args = ["--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];
        if (Environment.UserName == "root")
        {
            args.Add("--no-sandbox"); // Chromium refuses to start its sandbox as root
        }

        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args = args,
            Timeout = 60_000,
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }

    public async Task<ConsoleTab> OpenAsync(Uri gateway, ViewportSize? viewport = null)
    {
        Skip.If(Browser is null, SkipReason);
        var context = await Browser!.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = gateway.ToString(),
            ViewportSize = viewport ?? new ViewportSize { Width = 1280, Height = 800 },
            Locale = "en-GB",
            TimezoneId = "UTC",
        });
        context.SetDefaultTimeout((float)Timeout.TotalMilliseconds);
        return new ConsoleTab(await context.NewPageAsync());
    }
}

// A browser tab on the console, closed with its context at the end of the test.
public sealed class ConsoleTab(IPage page) : IAsyncDisposable
{
    public IPage Page { get; } = page;

    // Opens the console and pastes the key, as a person would.
    public async Task SignInAsync(string key)
    {
        await Page.GotoAsync("/");
        await Page.GetByLabel("API key").FillAsync(key);
        await Page.GetByRole(AriaRole.Button, new() { Name = "Use this key" }).ClickAsync();
    }

    public ILocator Link(string name) => Page.GetByRole(AriaRole.Link, new() { Name = name, Exact = true });

    public ILocator Button(string name) => Page.GetByRole(AriaRole.Button, new() { Name = name, Exact = true });

    public ILocator Field(string label) => Page.GetByLabel(label, new() { Exact = true });

    public ILocator Region(string name) => Page.GetByRole(AriaRole.Region, new() { Name = name, Exact = true });

    public ValueTask DisposeAsync() => new(Page.Context.CloseAsync());
}

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<Chromium>
{
    public const string Name = "Browser";
}
