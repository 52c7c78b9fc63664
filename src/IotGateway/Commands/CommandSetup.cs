using IotGateway.Hosting;

namespace IotGateway.Commands;

public static class CommandSetup
{
    public static IServiceCollection AddCommands(this IServiceCollection services)
    {
        services.AddOptions<CommandOptions>().BindSettings(CommandOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<CommandOptions>, CommandOptionsValidator>();
        services.AddScoped<CommandIntake>();
        services.AddSingleton<CommandCompletion>();
        services.AddSingleton<CommandTransitions>();
        services.AddSingleton<MqttCommandTransport>();
        services.AddSingleton<Tcp.TcpCommandTransport>();
        services.AddSingleton<ICommandTransport, CommandRouter>();
        services.AddSingleton<PublishedMarks>();
        services.AddSingleton<CommandDispatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<CommandDispatcher>());
        services.AddSingleton<CommandExpiry>();
        services.AddHostedService(sp => sp.GetRequiredService<CommandExpiry>());
        services.AddSingleton<Heartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<Heartbeat>());
        return services;
    }
}
