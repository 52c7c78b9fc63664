using IotGateway.Hosting;

namespace IotGateway.Mqtt;

public static class MqttSetup
{
    public static IServiceCollection AddGatewayMqtt(this IServiceCollection services)
    {
        services.AddOptions<MqttOptions>().BindSettings(MqttOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<MqttOptions>, MqttOptionsAttributeValidator>();
        services.AddSingleton<IValidateOptions<MqttOptions>, MqttOptionsValidator>();
        services.AddSingleton<TopicLayout>();

        // Hosted services start in registration order: the broker listens before the client connects to it
        // (HostedServiceOrderTests holds the order the gateway relies on).
        services.AddSingleton<EmbeddedBroker>();
        services.AddHostedService(sp => sp.GetRequiredService<EmbeddedBroker>());
        services.AddSingleton<MqttConnection>();
        services.AddHostedService(sp => sp.GetRequiredService<MqttConnection>());
        return services;
    }
}
