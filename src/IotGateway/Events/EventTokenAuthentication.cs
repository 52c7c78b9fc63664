using System.Security.Claims;
using System.Text.Encodings.Web;
using IotGateway.Security;
using Microsoft.AspNetCore.Authentication;

namespace IotGateway.Events;

public static class EventTokenDefaults
{
    public const string Scheme = "EventToken";
    public const string QueryParameter = "access_token";

    // The one route that accepts it, and with it the API key header.
    public const string Schemes = $"{Scheme},{ApiKeyDefaults.Scheme}";
}

// ?access_token=… on GET /api/events → the identity of the key that asked for the token (EventTokens).
public sealed class EventTokenAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    EventTokens tokens,
    IProblemDetailsService problems) : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!Request.Query.TryGetValue(EventTokenDefaults.QueryParameter, out var values) || string.IsNullOrEmpty(values[0]))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (tokens.Validate(values[0]!) is not { } identity)
        {
            return Task.FromResult(AuthenticateResult.Fail("The access token is not valid or has expired."));
        }

        var claims = new[] { new Claim(ClaimTypes.Name, identity.Name), new Claim(ClaimTypes.Role, identity.Role.ToString()) };
        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, EventTokenDefaults.Scheme));
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, EventTokenDefaults.Scheme)));
    }

    // Challenged before the API key scheme: a presented token that does not work says so; otherwise the API key
    // scheme answers (it writes the 401 only while the response has not started).
    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        if (!Request.Query.ContainsKey(EventTokenDefaults.QueryParameter) || Request.Headers.ContainsKey(ApiKeyDefaults.HeaderName))
        {
            return;
        }

        Response.StatusCode = StatusCodes.Status401Unauthorized;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = new ProblemDetails
            {
                Status = StatusCodes.Status401Unauthorized,
                Title = "Access token not valid",
                Detail = "The access_token is unknown or has expired (Events:TokenLifetimeSeconds). Get a new one from POST /api/events/tokens.",
            },
        });
    }
}
