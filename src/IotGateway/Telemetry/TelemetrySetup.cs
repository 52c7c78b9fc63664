using IotGateway.Hosting;

namespace IotGateway.Telemetry;

public static class TelemetrySetup
{
    public static IServiceCollection AddTelemetryIngest(this IServiceCollection services)
    {
        services.AddOptions<IngestOptions>().BindSettings(IngestOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<TelemetryOptions>().BindSettings(TelemetryOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IngestQueue>();
        services.AddSingleton<IngestProgress>();
        // Registered after the MQTT connection, so it stops first and flushes its queue while the connection can still ack
        // (HostedServiceOrderTests).
        services.AddSingleton<IngestWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<IngestWriter>());
        services.AddSingleton<TelemetryRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<TelemetryRetention>());
        return services;
    }
}
