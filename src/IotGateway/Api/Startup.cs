using IotGateway.Mqtt;
using IotGateway.Security;
using IotGateway.WebConsole;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.FileProviders;

namespace IotGateway.Api;

public static partial class Startup
{
    // Settings are read once at start (options are not monitored). The default appsettings.json sources watch for
    // changes through the content root's file provider, which watches the whole content root, usually holding data/:
    // its thread woke at every database write. The sources are re-added without reload, and that provider replaced.
    public static WebApplicationBuilder ReadSettingsOnce(this WebApplicationBuilder builder)
    {
        var watching = builder.Environment.ContentRootFileProvider;
        var quiet = new PhysicalFileProvider(builder.Environment.ContentRootPath);
        var sources = builder.Configuration.Sources;
        for (var i = 0; i < sources.Count; i++)
        {
            if (sources[i] is FileConfigurationSource { ReloadOnChange: true } file)
            {
                file.ReloadOnChange = false;
                if (ReferenceEquals(file.FileProvider, watching))
                {
                    file.FileProvider = quiet;
                }

                sources[i] = file; // replacing a source rebuilds its provider
            }
        }

        builder.Environment.ContentRootFileProvider = quiet;
        (watching as IDisposable)?.Dispose();
        return builder;
    }

    // Log levels the gateway starts with; appsettings.json or the environment (Logging__LogLevel__<category>) override
    // them, since these rules come before the configuration's. The health-check service logs an error at every poll
    // while not ready (ReadinessLog says it once); the host logs a start failure with its stack trace (Program says it
    // in one line). A background service's crash is Critical, and still logged.
    public static ILoggingBuilder SetLogLevelDefaults(this ILoggingBuilder logging)
    {
        logging.Services.Configure<LoggerFilterOptions>(options =>
        {
            options.Rules.Insert(0, new LoggerFilterRule(null, "Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.Critical, null));
            options.Rules.Insert(0, new LoggerFilterRule(null, "Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical, null));
        });
        return logging;
    }

    // A path no route knows is a 404 whatever the key: without this the authorization fallback answers 401 first.
    // After Swagger UI (which is middleware), before authentication.
    public static void UseNotFoundForUnknownPaths(this WebApplication app) =>
        app.Use((context, next) => context.GetEndpoint() is not null ? next(context)
            : Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Not found",
                detail: $"No route answers {context.Request.Method} {context.Request.Path}. The API is described at /swagger.").ExecuteAsync(context));

    // appsettings.json lives at the repository root and is copied next to the binary. The host already reads the
    // one in its content root (the working directory, e.g. the repository root under `dotnet run`); only when
    // there is none there (the binary started from elsewhere) is the copy beside the binary added.
    public static IConfigurationBuilder AddSettingsBesideBinary(this IConfigurationBuilder configuration, string contentRoot)
    {
        if (File.Exists(Path.Combine(contentRoot, "appsettings.json")))
        {
            return configuration;
        }

        var source = new JsonConfigurationSource { Path = Path.Combine(AppContext.BaseDirectory, "appsettings.json"), Optional = true };
        source.ResolveFileProvider();
        var index = configuration.Sources.ToList().FindIndex(s => s is JsonConfigurationSource);
        configuration.Sources.Insert(Math.Max(index, 0), source);
        return configuration;
    }

    // Until the database is open, the API answers 503 problem details with the reason (instead of failing on
    // tables that do not exist yet); health, metrics and Swagger UI keep working.
    public static void UseDatabaseReadiness(this WebApplication app)
    {
        var database = app.Services.GetRequiredService<DatabaseStartup>();
        app.Use((context, next) =>
            database.IsReady || !context.Request.Path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase)
                ? next(context)
                : NotReadyAsync(context, database.Problem));
    }

    private static Task NotReadyAsync(HttpContext context, string? problem) =>
        DatabaseUnavailableExceptionHandler.WriteAsync(context, problem ?? "The database is being opened.");

    public static void LogEndpointsOnStart(this WebApplication app)
    {
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("IotGateway");
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            var broker = app.Services.GetRequiredService<EmbeddedBroker>();
            var connection = app.Services.GetRequiredService<MqttConnection>();
            foreach (var address in addresses)
            {
                LogHttp(logger, address, $"{address.TrimEnd('/')}/swagger", $"{address.TrimEnd('/')}/health/ready");
            }

            if (addresses.FirstOrDefault() is { } first)
            {
                var console = WebConsoleSetup.ConsoleUrl(first);
                if (app.Services.GetRequiredService<ApiKeyStore>().GeneratedThisRun)
                {
                    LogConsoleFirstRun(logger, console);
                }
                else
                {
                    LogConsole(logger, console);
                }
            }

            LogMqtt(logger, broker.Enabled ? $"{broker.ListenAddress} (embedded broker; devices connect here)" : connection.BrokerDescription);
        });
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "HTTP API on {Address}; Swagger UI at {SwaggerUrl}; readiness at {ReadyUrl}")]
    private static partial void LogHttp(ILogger logger, string address, string swaggerUrl, string readyUrl);

    [LoggerMessage(Level = LogLevel.Information, Message = "Web console: open {ConsoleUrl} in a browser and paste an API key")]
    private static partial void LogConsole(ILogger logger, string consoleUrl);

    [LoggerMessage(Level = LogLevel.Warning, Message = "First run: open the web console at {ConsoleUrl} and paste the API key printed above")]
    private static partial void LogConsoleFirstRun(ILogger logger, string consoleUrl);

    [LoggerMessage(Level = LogLevel.Information, Message = "MQTT: {Broker}")]
    private static partial void LogMqtt(ILogger logger, string broker);
}
