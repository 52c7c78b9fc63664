using System.Globalization;
using System.Threading.RateLimiting;
using IotGateway.Hosting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.RateLimiting;

namespace IotGateway.Security;

public static class SecuritySetup
{
    public const string CommandRateLimit = "commands";

    public static IServiceCollection AddGatewaySecurity(this IServiceCollection services)
    {
        services.AddOptions<ApiOptions>().BindSettings(ApiOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ApiOptions>, ApiOptionsValidator>();
        services.AddSingleton<IValidateOptions<ApiOptions>, ApiKeysUniqueValidator>();
        services.AddSingleton<ApiKeyStore>();

        services.AddAuthentication(ApiKeyDefaults.Scheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyDefaults.Scheme, null);

        // Every API route needs a key (Reader at least); operator routes say so with [Authorize(Policy = Operator)].
        services.AddAuthorizationBuilder()
            .AddPolicy(ApiKeyDefaults.OperatorPolicy, p => p.RequireRole(nameof(ApiRole.Operator)))
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireRole(nameof(ApiRole.Reader), nameof(ApiRole.Operator)).Build());

        services.AddRateLimiter(limiter =>
        {
            limiter.AddPolicy(CommandRateLimit, context =>
            {
                var limits = context.RequestServices.GetRequiredService<IOptions<ApiOptions>>().Value.RateLimit;
                var partition = context.User.Identity?.Name ?? context.Connection.RemoteIpAddress?.ToString() ?? "anonymous";
                return RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = limits.Burst,
                    TokensPerPeriod = Math.Max(1, (int)Math.Round(limits.PermitsPerSecond * Math.Max(1, 1 / limits.PermitsPerSecond))),
                    ReplenishmentPeriod = TimeSpan.FromSeconds(Math.Max(1, 1 / limits.PermitsPerSecond)),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            limiter.OnRejected = async (context, cancellationToken) =>
            {
                var http = context.HttpContext;
                http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
                http.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
                await http.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext
                {
                    HttpContext = http,
                    ProblemDetails = new ProblemDetails
                    {
                        Status = StatusCodes.Status429TooManyRequests,
                        Title = "Too many command requests",
                        Detail = $"This key may queue or cancel at most {http.RequestServices.GetRequiredService<IOptions<ApiOptions>>().Value.RateLimit.PermitsPerSecond} commands per second " +
                            $"(Api:RateLimit). Retry after {retryAfter} s.",
                    },
                });
            };
        });
        return services;
    }
}
