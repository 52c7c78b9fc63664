using IotGateway.Security;
using Microsoft.AspNetCore.Authorization;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

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

            // The Authorize button: paste an API key once, every call sends it as X-API-Key.
            options.AddSecurityDefinition(ApiKeyDefaults.Scheme, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = ApiKeyDefaults.HeaderName,
                Description = "An API key from Api:Keys, or the generated key printed at first start (also in data/api-key).",
            });
            options.AddSecurityRequirement(document => new OpenApiSecurityRequirement
            {
                [new OpenApiSecuritySchemeReference(ApiKeyDefaults.Scheme, document)] = [],
            });
            options.OperationFilter<AuthorizationResponses>();
            options.SchemaFilter<SchemaExamples>();
            options.OperationFilter<TextResponses>();
        });
        return services;
    }

    public static WebApplication UseGatewaySwagger(this WebApplication app)
    {
        app.UseSwagger();
        app.UseSwaggerUI(options => options.DocumentTitle = "IoT Gateway API");
        return app;
    }

    // Documents the 401 every route can return, the 403 of the operator-only ones, and the 503 every route answers
    // while the database cannot be used (not open yet, locked elsewhere, disk full).
    private sealed class AuthorizationResponses : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            operation.Responses ??= [];
            operation.Responses.TryAdd("401", new OpenApiResponse { Description = "No API key, or not a valid one." });
            var operatorOnly = context.MethodInfo.GetCustomAttributes(true).OfType<AuthorizeAttribute>()
                .Any(a => a.Policy == ApiKeyDefaults.OperatorPolicy);
            if (operatorOnly)
            {
                operation.Responses.TryAdd("403", new OpenApiResponse { Description = "The key is a Reader key; this needs an Operator key." });
            }

            operation.Responses.TryAdd("503", new OpenApiResponse { Description = "The database is not available now (the reason is in the body); see Retry-After." });
        }
    }
}
