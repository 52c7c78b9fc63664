using System.Text.Json.Serialization;
using IotGateway;
using IotGateway.Api;
using IotGateway.Commands;
using IotGateway.Data;
using IotGateway.Devices;
using IotGateway.Events;
using IotGateway.Health;
using IotGateway.Mqtt;
using IotGateway.Security;
using IotGateway.Telemetry;
using IotGateway.WebConsole;
using Prometheus;

if (args is ["healthcheck", var probeUrl])
{
    return await HealthProbe.RunAsync(probeUrl);
}

// Settings are read once at start (options are not monitored). Watching for appsettings.json changes would watch
// the content root, which usually holds data/: the watcher thread woke at every database write.
var builder = WebApplication.CreateBuilder([.. args, "--hostBuilder:reloadConfigOnChange=false"]);

// Configuration: appsettings.json (repository root, copied next to the binary), environment, the article's variables, command line
builder.Configuration.AddSettingsBesideBinary(builder.Environment.ContentRootPath).AddArticleEnvironmentVariables();
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<GatewayMetrics>();

// Storage
builder.Services.AddGatewayStorage(builder.Configuration);

// MQTT: the embedded broker (when BROKER=embedded), then the gateway's own persistent-session client
builder.Services.AddGatewayMqtt();

// Devices, telemetry ingest and retention, commands, live events
builder.Services.AddSingleton<DeviceRegistry>();
builder.Services.AddScoped<DeviceDeletion>();
builder.Services.AddTelemetryIngest();
builder.Services.AddCommands();
builder.Services.AddGatewayEvents();

// HTTP API
builder.Services.AddControllers()
    .AddJsonOptions(o =>
    {
        o.JsonSerializerOptions.Converters.Add(new JsonStringEnumConverter());
        // Stored JSON (JsonText.MaxDepth deep) is written inside the API's own objects.
        o.JsonSerializerOptions.MaxDepth = JsonText.ApiMaxDepth;
    });
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
app.UseAuthentication();
app.UseAuthorization();
app.UseRateLimiter();
app.MapControllers();
// Health and metrics stay open: they reveal no device data, and probes carry no keys.
app.MapGatewayHealthChecks();
app.MapMetrics().AllowAnonymous(); // Prometheus text: the gateway's instruments (GatewayMetrics) and the runtime's
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
    // that says which and an exit code, not an unhandled-exception abort (the host has logged the details above).
    app.Logger.LogCritical("The gateway could not start and stops: {Reason}", ex.Message);
    return StartFailure.ExitCode;
}

return 0;

public partial class Program;
