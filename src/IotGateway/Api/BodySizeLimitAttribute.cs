using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Mvc.Filters;

namespace IotGateway.Api;

// Like [RequestSizeLimit], plus an early 413 problem details answer when Content-Length already says the
// body is too large (servers without a body-size feature, such as the test server, enforce nothing else).
[AttributeUsage(AttributeTargets.Method)]
public sealed class BodySizeLimitAttribute(long bytes) : Attribute, IAsyncResourceFilter
{
    public long Bytes { get; } = bytes;

    public Task OnResourceExecutionAsync(ResourceExecutingContext context, ResourceExecutionDelegate next) => LimitAsync(context, next, Bytes);

    public static async Task LimitAsync(ResourceExecutingContext context, ResourceExecutionDelegate next, long bytes)
    {
        var http = context.HttpContext;
        if (http.Request.ContentLength > bytes)
        {
            context.Result = new ObjectResult(new ProblemDetails
            {
                Status = StatusCodes.Status413PayloadTooLarge,
                Title = "Request body too large",
                Detail = $"The body is {http.Request.ContentLength} bytes; this route accepts at most {bytes}.",
            })
            {
                StatusCode = StatusCodes.Status413PayloadTooLarge,
                ContentTypes = { "application/problem+json" },
            };
            return;
        }

        // Chunked bodies are cut off by the server as they are read (BadHttpRequestException -> 413 problem).
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = bytes;
        }

        await next();
    }
}
