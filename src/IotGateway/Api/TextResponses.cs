using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace IotGateway.Api;

// A body that is not JSON (a stream, a file), with an example, for Swagger: the API explorer only describes JSON.
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class TextResponseAttribute(string mediaType, string example) : Attribute
{
    public string MediaType { get; } = mediaType;
    public string Example { get; } = example;
}

// Routes whose answer is not JSON: their [TextResponse] bodies, with examples, for 200 (after ErrorResponses, which
// keeps only application/json for success answers).
public sealed class TextResponses : IOperationFilter
{
    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        var bodies = context.MethodInfo.GetCustomAttributes<TextResponseAttribute>().ToList();
        if (bodies.Count == 0 || operation.Responses is null)
        {
            return;
        }

        operation.Responses["200"] = new OpenApiResponse
        {
            Description = operation.Responses.TryGetValue("200", out var ok) ? ok.Description : "OK",
            Content = bodies.ToDictionary(b => b.MediaType, b => (IOpenApiMediaType)new OpenApiMediaType
            {
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                Example = JsonValue.Create(b.Example),
            }),
        };
    }
}
