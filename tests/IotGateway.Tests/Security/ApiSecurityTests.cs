using IotGateway.Commands;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Security;

// API keys and roles over the real HTTP pipeline. The broker is unreachable on purpose: none of this needs it.
public sealed class ApiSecurityTests : IAsyncLifetime
{
    // Its own key, so the other tests' requests do not share its rate-limit budget.
    private const string BurstKey = "burst-operator-key-0123456789";

    private GatewayApp _gateway = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", s =>
        {
            s["Api:RateLimit:PermitsPerSecond"] = "0.1";
            s["Api:RateLimit:Burst"] = "5";
            s["Api:Keys:2:Name"] = "burst";
            s["Api:Keys:2:Key"] = BurstKey;
            s["Api:Keys:2:Role"] = "Operator";
        }, waitUntilReady: false);
        await using var scope = _gateway.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        db.Devices.AddRange(
            new Device { Id = "dev-a", FirstSeen = DateTimeOffset.UtcNow, SignedIn = true },
            new Device { Id = "dev-b", FirstSeen = DateTimeOffset.UtcNow, SignedIn = true },
            new Device { Id = "dev-c", FirstSeen = DateTimeOffset.UtcNow });
        await db.SaveChangesAsync();
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Fact]
    public async Task MissingOrWrongKeyIs401WithProblemDetails()
    {
        using var anonymous = _gateway.CreateClient(apiKey: null);
        using var wrong = _gateway.CreateClient("not-a-key-anyone-configured");
        foreach (var client in new[] { anonymous, wrong })
        {
            var response = await client.GetAsync("/api/devices");
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains("X-API-Key", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/devices/dev-a/commands", new { command = "PING" })).StatusCode);
        }
    }

    [Fact]
    public async Task ReaderReadsButCannotQueueOrCancel()
    {
        using var reader = _gateway.CreateClient(GatewayApp.ReaderKey);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/devices")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/devices/dev-a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/devices/dev-a/telemetry")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/devices/dev-a/commands")).StatusCode);

        var post = await reader.PostAsJsonAsync("/api/devices/dev-a/commands", new { command = "PING" });
        Assert.Equal(HttpStatusCode.Forbidden, post.StatusCode);
        Assert.Equal("application/problem+json", post.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.DeleteAsync($"/api/commands/{Guid.NewGuid()}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", signedIn = true })).StatusCode);
    }

    [Fact]
    public async Task OperatorQueuesCancelsAndIsRecordedByName()
    {
        var queued = await _gateway.QueueCommandAsync("dev-c", new { command = "PING" });
        var command = await _gateway.GetCommandAsync(queued.Id);
        Assert.Equal("test-operator", command.RequestedBy);

        Assert.Equal(HttpStatusCode.OK, (await _gateway.Http.DeleteAsync($"/api/commands/{queued.Id}")).StatusCode);
        Assert.Equal("test-operator", (await _gateway.GetCommandAsync(queued.Id)).CancelledBy);

        var bulk = await _gateway.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "REPORT", signedIn = true });
        Assert.Equal(HttpStatusCode.Accepted, bulk.StatusCode);
        var accepted = await bulk.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json);
        Assert.Equal(2, accepted!.Count);
        using var reader = _gateway.CreateClient(GatewayApp.ReaderKey);
        var summary = await reader.GetFromJsonAsync<BulkCommandSummary>($"/api/commands/bulk/{accepted.BatchId}", GatewayApp.Json);
        Assert.Equal(2, summary!.ByStatus[CommandStatus.Pending]);
        var page = await reader.GetFromJsonAsync<Api.Page<CommandView>>("/api/devices/dev-b/commands", GatewayApp.Json);
        Assert.All(page!.Items, c => Assert.Equal("test-operator", c.RequestedBy));
        Assert.All(page.Items, c => Assert.Equal(accepted.BatchId, c.BatchId));
    }

    [Fact]
    public async Task CommandRoutesAreRateLimitedPerKeyWithRetryAfter()
    {
        using var limited = _gateway.CreateClient(BurstKey);
        HttpResponseMessage? rejected = null;
        for (var i = 0; i < 20 && rejected is null; i++)
        {
            var response = await limited.PostAsJsonAsync("/api/devices/dev-a/commands", new { command = "PING" });
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                rejected = response;
            }
            else
            {
                Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            }
        }

        Assert.NotNull(rejected);
        Assert.Equal("application/problem+json", rejected.Content.Headers.ContentType?.MediaType);
        Assert.True(rejected.Headers.RetryAfter?.Delta > TimeSpan.Zero, "Retry-After says when to come back");

        // Reads are not limited, and another key has its own budget.
        using var reader = _gateway.CreateClient(GatewayApp.ReaderKey);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/devices")).StatusCode);
    }

    [Fact]
    public async Task HealthMetricsAndSwaggerStayOpen()
    {
        using var anonymous = _gateway.CreateClient(apiKey: null);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await anonymous.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/metrics")).StatusCode);
        var swagger = await anonymous.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var scheme = swagger.GetProperty("components").GetProperty("securitySchemes").GetProperty("ApiKey");
        Assert.Equal("X-API-Key", scheme.GetProperty("name").GetString());
        var post = swagger.GetProperty("paths").GetProperty("/api/devices/{deviceId}/commands").GetProperty("post").GetProperty("responses");
        Assert.True(post.TryGetProperty("401", out _) && post.TryGetProperty("403", out _) && post.TryGetProperty("429", out _));

        // The bulk route and its batch summary are documented with every answer they give.
        var bulk = swagger.GetProperty("paths").GetProperty("/api/commands/bulk").GetProperty("post");
        Assert.False(string.IsNullOrEmpty(bulk.GetProperty("summary").GetString()));
        Assert.Equal(["200", "202", "400", "401", "403", "404", "413", "429", "503"], bulk.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order(StringComparer.Ordinal));
        Assert.True(swagger.GetProperty("paths").GetProperty("/api/commands/bulk/{batchId}").GetProperty("get").GetProperty("responses").TryGetProperty("404", out _));
    }
}
