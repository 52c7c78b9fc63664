using IotGateway.Hosting;
using Microsoft.AspNetCore.Authentication;

namespace IotGateway.Events;

public static class EventSetup
{
    public static IServiceCollection AddGatewayEvents(this IServiceCollection services)
    {
        services.AddOptions<EventOptions>().BindSettings(EventOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<EventHub>();
        services.AddSingleton<EventTokens>();
        services.AddAuthentication()
            .AddScheme<AuthenticationSchemeOptions, EventTokenAuthenticationHandler>(EventTokenDefaults.Scheme, null);
        return services;
    }
}
