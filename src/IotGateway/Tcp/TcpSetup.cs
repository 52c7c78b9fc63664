using IotGateway.Hosting;

namespace IotGateway.Tcp;

public static class TcpSetup
{
    public static IServiceCollection AddTcpDevices(this IServiceCollection services)
    {
        services.AddOptions<TcpOptions>().BindSettings(TcpOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TcpOptions>, TcpOptionsAttributeValidator>();
        services.AddSingleton<IValidateOptions<TcpOptions>, TcpOptionsValidator>();
        services.AddSingleton<TcpDevices>();
        // After the ingest writer: hosted services stop in reverse order, so connections end (and their devices are
        // signed out) while the writer can still store it.
        services.AddSingleton<TcpDeviceListener>();
        services.AddHostedService(sp => sp.GetRequiredService<TcpDeviceListener>());
        return services;
    }
}
