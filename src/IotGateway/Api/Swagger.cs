using Microsoft.OpenApi;

namespace IotGateway.Api;

public static class Swagger
{
    public static IServiceCollection AddGatewaySwagger(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(options =>
        {
            options.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "IoT Gateway",
                Version = "v1",
                Description = "Two-way communication with MQTT devices: queue commands for devices that are online only now and then, " +
                    "and query their stored telemetry, commands and answers.",
            });
            options.IncludeXmlComments(Path.Combine(AppContext.BaseDirectory, "IotGateway.xml"), includeControllerXmlComments: true);
        });
        return services;
    }

    public static WebApplication UseGatewaySwagger(this WebApplication app)
    {
        app.UseSwagger();
        app.UseSwaggerUI(options => options.DocumentTitle = "IoT Gateway API");
        return app;
    }
}
