using System.Text.Json;
using IotGateway.Ingest;
using IotGateway.Mqtt;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace IotGateway.Health;

public sealed class BrokerHealthCheck(MqttConnection connection) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var state = connection.State;
        return Task.FromResult(state.Connected
            ? HealthCheckResult.Healthy($"connected to {connection.BrokerDescription} since {ApiTime.ToText(state.Since)}")
            : HealthCheckResult.Unhealthy(state.LastError ?? $"not connected to {connection.BrokerDescription}"));
    }
}

public sealed class DatabaseHealthCheck(GatewayDbContext db, DatabaseStartup startup, DatabaseFile file, IngestWriter writer, IngestQueue queue,
    IngestProgress progress, IOptions<IngestOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!startup.IsReady)
        {
            return HealthCheckResult.Unhealthy(startup.Problem ?? "opening the database");
        }

        if (file.HasMoved())
        {
            return HealthCheckResult.Unhealthy("the database file was deleted or replaced while the gateway had it open; restart the gateway");
        }

        if (writer.State is { Healthy: false } state)
        {
            return HealthCheckResult.Unhealthy(state.LastError);
        }

        // Blocked without an error to report (a hung disk, a bug): messages wait and nothing is committed.
        var queued = queue.Count;
        if (progress.StalledFor(queued, TimeSpan.FromSeconds(options.Value.StallSeconds)) is { } stalled)
        {
            return HealthCheckResult.Unhealthy(
                $"ingest is not making progress: {queued} messages queued and no batch stored for {stalled.TotalSeconds:0} s (Ingest:StallSeconds)");
        }

        try
        {
            await db.Database.ExecuteSqlRawAsync("SELECT 1", cancellationToken);
            return HealthCheckResult.Healthy("database reachable");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy($"database unreachable: {ex.GetBaseException().Message}");
        }
    }
}

public static partial class HealthEndpoints
{
    public const string ReadyTag = "ready";

    private static readonly JsonSerializerOptions BodyJson = Json.Configure(new JsonSerializerOptions());

    public static IServiceCollection AddGatewayHealthChecks(this IServiceCollection services)
    {
        services.AddHealthChecks()
            .AddCheck<BrokerHealthCheck>("broker", tags: [ReadyTag])
            .AddCheck<DatabaseHealthCheck>("database", tags: [ReadyTag]);
        services.AddSingleton<ReadinessLog>();
        return services;
    }

    public static void MapGatewayHealthChecks(this IEndpointRouteBuilder endpoints)
    {
        // Live: the process answers. Ready: it can do its job (broker connected, database writable).
        endpoints.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync }).AllowAnonymous();
        endpoints.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag), ResponseWriter = WriteReadyAsync })
            .AllowAnonymous();
    }

    private static Task WriteReadyAsync(HttpContext context, HealthReport report)
    {
        context.RequestServices.GetRequiredService<ReadinessLog>().Observe(report);
        return WriteAsync(context, report);
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        return JsonSerializer.SerializeAsync(context.Response.Body, new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
        }, BodyJson);
    }
}

// One line when readiness changes, as a probe sees it, instead of the health-check service's error line at every poll
// while the gateway is not ready (Startup.SetLogLevelDefaults):
// the reasons themselves (broker, database) are logged where they happen. Not ready before the first ready is the
// expected start-up wait (Information); losing readiness later is a Warning.
public sealed partial class ReadinessLog(ILogger<ReadinessLog> logger)
{
    private readonly Lock _lock = new();
    private HealthStatus? _last;
    private bool _wasReady;

    public void Observe(HealthReport report)
    {
        lock (_lock)
        {
            if (_last == report.Status)
            {
                return;
            }

            _last = report.Status;
            var reasons = string.Join("; ", report.Entries.Where(e => e.Value.Status != HealthStatus.Healthy)
                .Select(e => $"{e.Key}: {e.Value.Description}"));
            if (report.Status == HealthStatus.Healthy)
            {
                _wasReady = true;
                LogReady();
            }
            else if (_wasReady)
            {
                LogNoLongerReady(reasons);
            }
            else
            {
                LogNotReadyYet(reasons);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Ready")]
    private partial void LogReady();

    [LoggerMessage(Level = LogLevel.Information, Message = "Not ready yet: {Reasons}")]
    private partial void LogNotReadyYet(string reasons);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No longer ready: {Reasons}")]
    private partial void LogNoLongerReady(string reasons);
}
