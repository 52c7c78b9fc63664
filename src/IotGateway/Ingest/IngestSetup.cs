using IotGateway.Hosting;

namespace IotGateway.Ingest;

public static class IngestSetup
{
    public static IServiceCollection AddIngest(this IServiceCollection services)
    {
        services.AddOptions<IngestOptions>().BindSettings(IngestOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IngestQueue>();
        services.AddSingleton<IngestProgress>();
        // Registered after the MQTT connection, so it stops first and flushes its queue while the connection can still ack
        // (HostedServiceOrderTests).
        services.AddSingleton<IngestWriter>();
        services.AddHostedService(sp => sp.GetRequiredService<IngestWriter>());
        return services;
    }
}
