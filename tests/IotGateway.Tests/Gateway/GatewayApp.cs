using System.Collections.Concurrent;
using System.Text.Json.Serialization;
using IotGateway.Commands;
using IotGateway.Observability;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace IotGateway.Tests.Gateway;

// The real gateway (its Program, found through any type of its assembly) in-process on the test server, with its own SQLite file and MQTT client id.
// Restarting keeps the data directory and client id, like restarting the service.
public sealed class GatewayApp : IAsyncDisposable
{
    public const string OperatorKey = "operator-key-for-tests-0123456789";
    public const string ReaderKey = "reader-key-for-tests-0123456789";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };

    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _services;
    private WebApplicationFactory<GatewayMetrics>? _factory;

    private readonly bool _kestrel;

    private GatewayApp(Dictionary<string, string?> settings, Action<IServiceCollection>? services, string dataDirectory, bool kestrel)
    {
        _settings = settings;
        _services = services;
        DataDirectory = dataDirectory;
        _kestrel = kestrel;
    }

    // With kestrel: the real server's address on loopback (a browser cannot reach the in-memory test server).
    public Uri BaseAddress => Http.BaseAddress!;

    public string DataDirectory { get; }

    public string ClientId => _settings["Mqtt:ClientId"]!;

    public LogCapture Logs { get; } = new();

    public HttpClient Http { get; private set; } = null!;

    public IServiceProvider Services => _factory!.Services;

    // A client with another key, or none.
    public HttpClient CreateClient(string? apiKey, bool followRedirects = true)
    {
        var client = _factory!.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = followRedirects });
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Add("X-API-Key", apiKey);
        }

        return client;
    }

    public string DatabasePath => Path.Combine(DataDirectory, "gateway.db");

    // PostgreSQL: a database of its own on the test run's cluster (null on SQLite).
    public string? PostgresConnectionString => _settings.GetValueOrDefault("Database:Provider") == nameof(DatabaseProvider.PostgreSQL)
        ? _settings["ConnectionStrings:Gateway"]
        : null;

    // Where this gateway's readings can be counted from outside, on either provider.
    public GatewayStorage Storage => PostgresConnectionString is { } pg ? GatewayStorage.Postgres(pg) : GatewayStorage.Sqlite(DatabasePath);

    public static async Task<GatewayApp> StartAsync(string broker, Action<Dictionary<string, string?>>? configure = null,
        Action<IServiceCollection>? services = null, bool waitUntilReady = true, bool waitForDatabase = true,
        DatabaseProvider provider = DatabaseProvider.Sqlite, bool kestrel = false)
    {
        var dataDirectory = Directory.CreateTempSubdirectory("iotgw-test-").FullName;
        var settings = new Dictionary<string, string?>
        {
            ["Mqtt:Broker"] = broker,
            ["Mqtt:ClientId"] = $"gw-test-{Guid.NewGuid():N}",
            ["Mqtt:ReconnectMinDelaySeconds"] = "0.1",
            ["Mqtt:ReconnectMaxDelaySeconds"] = "0.5",
            ["ConnectionStrings:Gateway"] = $"Data Source={Path.Combine(dataDirectory, "gateway.db")}",
            ["Mqtt:Embedded:RetainedMessagesFile"] = Path.Combine(dataDirectory, "retained.json"),
            ["Commands:ExpirySweepSeconds"] = "0.1",
            ["Logging:LogLevel:Default"] = "Information",
            ["Api:Keys:0:Name"] = "test-operator",
            ["Api:Keys:0:Key"] = OperatorKey,
            ["Api:Keys:0:Role"] = "Operator",
            ["Api:Keys:1:Name"] = "test-reader",
            ["Api:Keys:1:Key"] = ReaderKey,
            ["Api:Keys:1:Role"] = "Reader",
        };
        if (provider == DatabaseProvider.PostgreSQL)
        {
            settings["Database:Provider"] = nameof(DatabaseProvider.PostgreSQL);
            settings["ConnectionStrings:Gateway"] = await TestPostgres.CreateDatabaseAsync();
        }

        configure?.Invoke(settings);
        var app = new GatewayApp(settings, services, dataDirectory, kestrel);
        await app.StartHostAsync(waitUntilReady, waitForDatabase);
        return app;
    }

    // The embedded broker on a free port. A free port can be taken by a parallel test between finding and binding
    // it, so a refused bind tries another. Returns the gateway and the port devices connect to.
    public static async Task<(GatewayApp Gateway, int Port)> StartEmbeddedAsync(Action<Dictionary<string, string?>>? configure = null,
        DatabaseProvider provider = DatabaseProvider.Sqlite, bool kestrel = false)
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort.OnLoopback();
            try
            {
                var gateway = await StartAsync("embedded", s =>
                {
                    s["Mqtt:Embedded:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    configure?.Invoke(s);
                }, provider: provider, kestrel: kestrel);
                return (gateway, port);
            }
            catch (Exception ex) when (attempt < 3 && ex.ToString().Contains("cannot listen", StringComparison.Ordinal))
            {
            }
        }
    }

    public async Task RestartAsync(bool waitUntilReady = true, bool waitForDatabase = true)
    {
        await StopAsync();
        await StartHostAsync(waitUntilReady, waitForDatabase);
    }

    // The same database under a new client id: the broker sees a gateway it does not know and replays what is retained.
    public async Task RestartWithNewSessionAsync()
    {
        await StopAsync();
        _settings["Mqtt:ClientId"] = $"gw-test-{Guid.NewGuid():N}";
        await StartHostAsync(waitUntilReady: true);
    }

    public async Task StopAsync()
    {
        if (_factory is not null)
        {
            Http.Dispose();
            await _factory.DisposeAsync();
            _factory = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the WAL for a moment; the temp folder is cleaned by the OS later.
        }
    }

    public async Task WaitUntilReadyAsync(TimeSpan? timeout = null) =>
        await Eventually.UntilAsync(async () => (await Http.GetAsync("/health/ready")).StatusCode == HttpStatusCode.OK,
            timeout ?? TimeSpan.FromSeconds(20), "the gateway reports ready");

    public async Task<QueuedCommand> QueueCommandAsync(string deviceId, object body)
    {
        var response = await Http.PostAsJsonAsync($"/api/devices/{Uri.EscapeDataString(deviceId)}/commands", body, Json);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"POST command: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return (await response.Content.ReadFromJsonAsync<QueuedCommand>(Json))!;
    }

    public async Task<CommandView> GetCommandAsync(Guid id) =>
        (await Http.GetFromJsonAsync<CommandView>($"/api/commands/{id}", Json))!;

    public Task<CommandView> WaitForCommandAsync(Guid id, CommandStatus status, TimeSpan? timeout = null) =>
        Eventually.UntilAsync(async () => await GetCommandAsync(id) is { } c && c.Status == status ? c : null,
            timeout ?? TimeSpan.FromSeconds(15), $"command {id} becomes {status}");

    public async Task<DeviceView?> GetDeviceAsync(string deviceId)
    {
        var response = await Http.GetAsync($"/api/devices/{Uri.EscapeDataString(deviceId)}");
        return response.StatusCode == HttpStatusCode.NotFound ? null : await response.Content.ReadFromJsonAsync<DeviceView>(Json);
    }

    public Task<DeviceView> WaitForDeviceAsync(string deviceId, Func<DeviceView, bool> condition, string because, TimeSpan? timeout = null) =>
        Eventually.UntilAsync(async () => await GetDeviceAsync(deviceId) is { } d && condition(d) ? d : null,
            timeout ?? TimeSpan.FromSeconds(15), because);

    private async Task StartHostAsync(bool waitUntilReady, bool waitForDatabase = true)
    {
        _factory = new WebApplicationFactory<GatewayMetrics>().WithWebHostBuilder(web =>
        {
            foreach (var (key, value) in _settings)
            {
                web.UseSetting(key, value);
            }

            if (_kestrel)
            {
                web.UseSetting(WebHostDefaults.ServerUrlsKey, "http://127.0.0.1:0"); // a free loopback port
            }

            web.ConfigureLogging(logging => logging.AddProvider(Logs));
            if (_services is not null)
            {
                web.ConfigureTestServices(_services);
            }
        });
        if (_kestrel)
        {
            _factory.UseKestrel();
        }

        Http = _factory.CreateClient();
        Http.DefaultRequestHeaders.Add("X-API-Key", OperatorKey);
        if (waitForDatabase)
        {
            // Tests seed and read the database right after the start; it is opened in the background.
            await _factory.Services.GetRequiredService<DatabaseStartup>().Ready.WaitAsync(TimeSpan.FromSeconds(20));
        }

        if (waitUntilReady)
        {
            await WaitUntilReadyAsync();
        }
    }
}

// Every log line of the app under test, formatted, so tests can assert on what an operator would read.
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public bool Contains(string text) => _lines.Any(l => l.Contains(text, StringComparison.Ordinal));

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None; // the app's own configuration filters

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
            }
        }
    }
}

public static class FakeTimeSettings
{
    // With a FakeTimeProvider, a periodic timer fires once per period the clock is moved (a day of 0.1 s expiry sweeps
    // is 864,000 sweeps, run on the thread that moves it): tests that move the clock far keep the gateway's own
    // periodic work to one run an hour.
    public static void SlowPeriodicTimers(this Dictionary<string, string?> settings) => settings["Commands:ExpirySweepSeconds"] = "3600";
}
