using System.Text.Json;
using System.Text.Json.Nodes;
using IotGateway.Security;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace IotGateway.Api;

public static class Swagger
{
    public const string ProblemJson = "application/problem+json";

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
                    "and query their stored telemetry, commands and answers. Times are UTC with Z, to the millisecond; time " +
                    $"parameters take {ApiTime.Accepted}.",
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
            options.OperationFilter<ErrorResponses>();
            options.OperationFilter<CommandExamples>();
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

    // Every error answer as what it is, problem details (application/problem+json) with an example of the gateway's own
    // words: the 401 every route can return, the 403 of the operator-only ones, the 503 every route answers while the
    // database cannot be used, and the codes the actions declare. Success answers are JSON only.
    private sealed class ErrorResponses : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            operation.Responses ??= [];
            var attributes = context.MethodInfo.GetCustomAttributes(true).Concat(context.MethodInfo.DeclaringType?.GetCustomAttributes(true) ?? []).ToList();
            if (!attributes.OfType<AllowAnonymousAttribute>().Any())
            {
                operation.Responses.TryAdd("401", new OpenApiResponse { Description = "No API key, or not a valid one." });
            }

            if (attributes.OfType<AuthorizeAttribute>().Any(a => a.Policy == ApiKeyDefaults.OperatorPolicy))
            {
                operation.Responses.TryAdd("403", new OpenApiResponse { Description = "The key is a Reader key; this needs an Operator key." });
            }

            operation.Responses.TryAdd("503", new OpenApiResponse { Description = "The database is not available now (the reason is in the body); see Retry-After." });

            foreach (var (code, response) in operation.Responses)
            {
                if (response is not OpenApiResponse concrete)
                {
                    continue;
                }

                if (code.StartsWith('2'))
                {
                    concrete.Content?.Keys.Where(type => type != "application/json").ToList().ForEach(type => concrete.Content.Remove(type));
                    continue;
                }

                var schemaName = code == "400" ? "ValidationProblemDetails" : "ProblemDetails";
                if (!context.SchemaRepository.Schemas.ContainsKey(schemaName))
                {
                    context.SchemaGenerator.GenerateSchema(code == "400" ? typeof(Microsoft.AspNetCore.Mvc.ValidationProblemDetails) : typeof(Microsoft.AspNetCore.Mvc.ProblemDetails),
                        context.SchemaRepository);
                }

                concrete.Content = new Dictionary<string, IOpenApiMediaType>
                {
                    [ProblemJson] = new OpenApiMediaType
                    {
                        Schema = new OpenApiSchemaReference(schemaName, context.Document),
                        Example = Examples.Problem(code, context.ApiDescription.RelativePath ?? ""),
                    },
                };
            }
        }
    }

    // The request bodies a newcomer can send as they are: one per command the device simulator (and the article's
    // device) understands, with the payload that command takes; and what each answers.
    private sealed class CommandExamples : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            var path = context.ApiDescription.RelativePath;
            var method = context.ApiDescription.HttpMethod;
            if (method == "POST" && path == "api/devices/{deviceId}/commands")
            {
                SetExamples(operation.RequestBody?.Content, Examples.Commands.ToDictionary(c => c.Name, c => (c.Summary, Examples.Request(c))));
                SetExamples(Response(operation, "200")?.Content,
                    Examples.Commands.ToDictionary(c => c.Name + " answered", c => ($"With waitSeconds, answered in time. {c.Summary}", Examples.Answered(c))));
                var accepted = Response(operation, "202");
                SetExamples(accepted?.Content, new Dictionary<string, (string, JsonNode)>
                {
                    ["Queued"] = ("Without waitSeconds: its id, device and status", Examples.Queued()),
                    ["Still open"] = ("With waitSeconds, not answered in time: the whole command, as GET /api/commands/{id} returns it",
                        Examples.StillOpen(Examples.Commands[0])),
                });
                // Either shape: the short one without waitSeconds, the whole command with it.
                if (accepted?.Content is { } content && content.TryGetValue("application/json", out var media) && media is OpenApiMediaType json)
                {
                    EnsureSchema(context, typeof(Commands.CommandView));
                    json.Schema = new OpenApiSchema
                    {
                        AnyOf = [new OpenApiSchemaReference(nameof(Commands.QueuedCommand), context.Document),
                            new OpenApiSchemaReference(nameof(Commands.CommandView), context.Document)],
                    };
                }
            }
            else if (method == "POST" && path == "api/commands/bulk")
            {
                SetExamples(operation.RequestBody?.Content, new Dictionary<string, (string, JsonNode)>
                {
                    ["PING, every signed-in device"] = ("Every device signed in now", new JsonObject { ["command"] = "PING", ["signedIn"] = true }),
                    ["SET_INTERVAL, named devices"] = ("The listed devices", new JsonObject
                    {
                        ["command"] = "SET_INTERVAL", ["payload"] = new JsonObject { ["seconds"] = 30 },
                        ["deviceIds"] = new JsonArray("sim-device-0001", "sim-device-0002"),
                    }),
                });
            }
            else if (method == "GET" && path == "api/commands/{id}")
            {
                SetExamples(Response(operation, "200")?.Content, Examples.Commands.ToDictionary(c => c.Name + " answered", c => (c.Summary, Examples.Answered(c))));
            }
        }

        private static OpenApiResponse? Response(OpenApiOperation operation, string code) =>
            operation.Responses is not null && operation.Responses.TryGetValue(code, out var response) ? response as OpenApiResponse : null;

        private static void EnsureSchema(OperationFilterContext context, Type type)
        {
            if (!context.SchemaRepository.Schemas.ContainsKey(type.Name))
            {
                context.SchemaGenerator.GenerateSchema(type, context.SchemaRepository);
            }
        }

        private static void SetExamples(IDictionary<string, IOpenApiMediaType>? content, Dictionary<string, (string Summary, JsonNode Value)> examples)
        {
            if (content is not null && content.TryGetValue("application/json", out var media) && media is OpenApiMediaType json)
            {
                json.Examples = examples.ToDictionary(e => e.Key, e => (IOpenApiExample)new OpenApiExample { Summary = e.Value.Summary, Value = e.Value.Value });
            }
        }
    }

    // An example for each shape the API answers with, written by the API's own serializer from a real value, so
    // Swagger UI shows true JSON (payloads as objects, times with Z) and never invents additionalProp1…3.
    private sealed class SchemaExamples : ISchemaFilter
    {
        public void Apply(IOpenApiSchema schema, SchemaFilterContext context)
        {
            if (schema is OpenApiSchema concrete && Examples.ForType(context.Type) is { } example)
            {
                concrete.Examples = [example];
            }
        }
    }
}
