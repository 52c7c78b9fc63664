using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;

namespace IotGateway.WebConsole;

// The web console: static files embedded in the gateway's assembly, so `dotnet run`, a published folder and the image
// serve the same files whatever the working directory. They hold no data, so they are served without a key; the page
// asks for one and sends it with every API call.
public static class WebConsoleSetup
{
    private const string ResourceNamespace = "IotGateway.WebConsole.wwwroot";

    // Only the gateway itself: no CDN, no inline script, no framing by other sites.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

    public static IFileProvider Files { get; } = new EmbeddedFileProvider(typeof(WebConsoleSetup).Assembly, ResourceNamespace);

    // Before authentication: the fallback policy would otherwise ask a key for the page that asks for the key.
    public static void UseWebConsole(this WebApplication app)
    {
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = Files });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = Files,
            OnPrepareResponse = context =>
            {
                var headers = context.Context.Response.Headers;
                // Revalidated every time (an ETag answers 304): a gateway upgrade never leaves an old module in a cache.
                headers.CacheControl = "no-cache";
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = new StringValues("no-referrer");
            },
        });
    }

    // What to open in a browser: a wildcard listening address is reached through localhost.
    public static string ConsoleUrl(string listeningAddress)
    {
        var uri = new UriBuilder(listeningAddress.Replace("://+", "://localhost", StringComparison.Ordinal)
            .Replace("://*", "://localhost", StringComparison.Ordinal));
        if (uri.Host is "0.0.0.0" or "[::]" or "::")
        {
            uri.Host = "localhost";
        }

        uri.Path = "/";
        return uri.Uri.ToString();
    }
}
