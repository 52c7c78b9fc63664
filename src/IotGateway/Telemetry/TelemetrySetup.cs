using IotGateway.Hosting;

namespace IotGateway.Telemetry;

public static class TelemetrySetup
{
    public static IServiceCollection AddTelemetryRetention(this IServiceCollection services)
    {
        services.AddOptions<TelemetryOptions>().BindSettings(TelemetryOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<TelemetryRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<TelemetryRetention>());
        return services;
    }
}
