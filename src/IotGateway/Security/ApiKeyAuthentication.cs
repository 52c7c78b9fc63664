using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;

namespace IotGateway.Security;

public static class ApiKeyDefaults
{
    public const string Scheme = "ApiKey";
    public const string HeaderName = "X-API-Key";
    public const string OperatorPolicy = "Operator";
}

// X-API-Key -> an identity named after the key's configured name, with its role. Missing or wrong key
// -> 401, a Reader on an Operator route -> 403, both as problem details.
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ApiKeyStore keys,
    IProblemDetailsService problems) : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Headers.TryGetValue(ApiKeyDefaults.HeaderName, out var values) || values.Count == 0 || string.IsNullOrEmpty(values[0]))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (keys.Authenticate(values[0]!) is not { } identity)
        {
            return Task.FromResult(AuthenticateResult.Fail("The API key is not valid."));
        }

        var claims = new[] { new Claim(ClaimTypes.Name, identity.Name), new Claim(ClaimTypes.Role, identity.Role.ToString()) };
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, ApiKeyDefaults.Scheme));
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, ApiKeyDefaults.Scheme)));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (Response.HasStarted)
        {
            // Another scheme of the route has answered already (GET /api/events: an access token that does not work).
            return;
        }

        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = $"{ApiKeyDefaults.Scheme} header=\"{ApiKeyDefaults.HeaderName}\"";
        var presented = Request.Headers.ContainsKey(ApiKeyDefaults.HeaderName);
        await WriteProblemAsync(StatusCodes.Status401Unauthorized, "API key required",
            presented ? "The X-API-Key header does not hold a valid key." : "Send an API key in the X-API-Key header.");
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        var role = Context.User.FindFirst(ClaimTypes.Role)?.Value ?? "unknown";
        await WriteProblemAsync(StatusCodes.Status403Forbidden, "Operator key required",
            $"This key's role is {role}: it may read, but queueing and cancelling commands needs an Operator key.");
    }

    private async Task WriteProblemAsync(int status, string title, string detail) =>
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
}
