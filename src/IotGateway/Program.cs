using IotGateway.Commands;
using IotGateway.Devices;
using IotGateway.Events;
using IotGateway.Health;
using IotGateway.Hosting;
using IotGateway.Ingest;
using IotGateway.Mqtt;
using IotGateway.Observability;
using IotGateway.Security;
using IotGateway.Tcp;
using IotGateway.Telemetry;
using IotGateway.WebConsole;

if (args is ["healthcheck", var probeUrl])
{
    return await HealthProbe.RunAsync(probeUrl);
}

var builder = WebApplication.CreateBuilder(args).ReadSettingsOnce();
builder.Logging.SetLogLevelDefaults();

// Configuration: appsettings.json (repository root, copied next to the binary), environment, the article's variables, command line
builder.Configuration.AddSettingsBesideBinary(builder.Environment.ContentRootPath).AddArticleEnvironmentVariables();
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddGatewayMetrics();

// Storage
builder.Services.AddGatewayStorage();

// MQTT: the embedded broker (when BROKER=embedded), then the gateway's own persistent-session client
builder.Services.AddGatewayMqtt();

// Devices, ingest (readings, presence, answers), telemetry retention, commands, live events
builder.Services.AddSingleton<DeviceRegistry>();
builder.Services.AddScoped<DeviceDeletion>();
builder.Services.AddIngest();
builder.Services.AddTelemetryRetention();
builder.Services.AddCommands();
builder.Services.AddTcpDevices();
builder.Services.AddGatewayEvents();

// HTTP API
builder.WebHost.ConfigureKestrel(kestrel => kestrel.UseProblemDetailsForKestrelErrors());
builder.Services.AddControllers(o => o.ModelBinderProviders.Insert(0, new ApiTimeModelBinderProvider()))
    .AddJsonOptions(o => Json.Configure(o.JsonSerializerOptions));
builder.Services.ConfigureHttpJsonOptions(o => Json.Configure(o.SerializerOptions));
builder.Services.AddProblemDetails();
builder.Services.AddGatewaySecurity();
builder.Services.AddExceptionHandler<BadRequestExceptionHandler>();
builder.Services.AddExceptionHandler<DatabaseUnavailableExceptionHandler>();
builder.Services.AddGatewaySwagger();
builder.Services.AddGatewayHealthChecks();

var app = builder.Build();
if (!SettingsCheck.Passes(app.Services, app.Logger))
{
    await app.DisposeAsync(); // flushes the console logger, which writes on its own thread
    return SettingsCheck.ExitCode;
}

// The database is opened (and migrated) by DatabaseStartup, which keeps retrying while it cannot.
app.Services.GetRequiredService<ApiKeyStore>().Load();

app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseDatabaseReadiness();
app.UseGatewaySwagger();
app.UseWebConsole(); // GET /: the web console's files, before authentication (they hold no data)
app.UseNotFoundForUnknownPaths();
app.UseAuthentication();
app.UseAuthorization();
app.UseRateLimiter();
app.MapControllers();
// Health and metrics stay open: they reveal no device data, and probes carry no keys.
app.MapGatewayHealthChecks();
app.MapPrometheusScrapingEndpoint().AllowAnonymous(); // Prometheus text: the gateway's instruments (GatewayMetrics), ASP.NET Core's and the runtime's
app.LogEndpointsOnStart();

var started = false;
app.Lifetime.ApplicationStarted.Register(() => started = true);
try
{
    await app.RunAsync();
}
catch (Exception ex) when (!started)
{
    // It never started: a port already taken (the embedded broker's or the HTTP one) is the usual reason. One line
    // that says which and an exit code, not an unhandled-exception abort; the stack trace only at Debug.
    app.Logger.LogCritical("The gateway could not start and stops: {Reason}", ex.Message);
    app.Logger.LogDebug(ex, "Start failure");
    return StartFailure.ExitCode;
}

return 0;

public partial class Program;
