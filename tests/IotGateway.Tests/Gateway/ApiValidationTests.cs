using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Gateway;

// Hostile and malformed HTTP input: always a 4xx with problem details, never a 500. The broker is
// unreachable on purpose: the API must keep answering while it is down.
public sealed class ApiValidationTests : IAsyncLifetime
{
    private GatewayApp _gateway = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        await using var scope = _gateway.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        db.Devices.Add(new Device { Id = "known", FirstSeen = DateTimeOffset.UtcNow });
        await db.SaveChangesAsync();
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [Theory]
    [InlineData("a+b")]
    [InlineData("a%23b")]
    [InlineData("a%2Fb")]
    [InlineData("tab%09id")]
    public async Task DeviceIdThatIsNotOneTopicLevelIsRejected(string deviceId)
    {
        foreach (var url in new[] { $"/api/devices/{deviceId}", $"/api/devices/{deviceId}/telemetry", $"/api/devices/{deviceId}/commands" })
        {
            await AssertProblemAsync(await _gateway.Http.GetAsync(url), HttpStatusCode.BadRequest);
        }

        await AssertProblemAsync(await PostCommandAsync(deviceId, """{"command":"PING"}"""), HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("a\u0000b")]
    [InlineData("a/b")]
    [InlineData("#")]
    [InlineData("")]
    public async Task BulkRequestWithBadDeviceIdIsRejected(string deviceId)
    {
        var body = JsonSerializer.Serialize(new { command = "PING", deviceIds = new[] { "known", deviceId } });
        var response = await _gateway.Http.PostAsync("/api/commands/bulk", new StringContent(body, Encoding.UTF8, "application/json"));
        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task BulkRequestNeedsDevicesOrAFilter()
    {
        var response = await _gateway.Http.PostAsync("/api/commands/bulk", new StringContent("""{"command":"PING"}""", Encoding.UTF8, "application/json"));
        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        var unknown = await _gateway.Http.PostAsync("/api/commands/bulk",
            new StringContent("""{"command":"PING","deviceIds":["known","ghost"]}""", Encoding.UTF8, "application/json"));
        await AssertProblemAsync(unknown, HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task OverlongDeviceIdIsRejected()
    {
        var id = new string('x', 129);
        await AssertProblemAsync(await _gateway.Http.GetAsync($"/api/devices/{id}"), HttpStatusCode.BadRequest);
        await AssertProblemAsync(await _gateway.Http.GetAsync($"/api/devices/{new string('x', 128)}"), HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("""{"command":""}""")]
    [InlineData("""{}""")]
    [InlineData("""{"command":5}""")]
    [InlineData("""{"command":"PING","ttlSeconds":-1}""")]
    [InlineData("""{"command":"PING","ttlSeconds":0}""")]
    [InlineData("""{"command":"PING","ttlSeconds":99999999999}""")]
    [InlineData("""{"command":"PING","ttlSeconds":"soon"}""")]
    [InlineData("""{"command":"PING","ttlSeconds":31536000}""")]
    [InlineData("""{"command":"PING" """)]
    [InlineData("""not json at all""")]
    [InlineData("""[]""")]
    public async Task MalformedCommandIsRejected(string body)
    {
        await AssertProblemAsync(await PostCommandAsync("known", body), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task OverlongCommandNameIsRejected()
    {
        await AssertProblemAsync(await PostCommandAsync("known", JsonSerializer.Serialize(new { command = new string('C', 65) })), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task OversizedCommandBodyIsRejectedWith413()
    {
        var body = JsonSerializer.Serialize(new { command = "PING", payload = new { blob = new string('x', 100_000) } });
        await AssertProblemAsync(await PostCommandAsync("known", body), HttpStatusCode.RequestEntityTooLarge);
    }

    [Fact]
    public async Task CommandForUnknownDeviceIs404()
    {
        await AssertProblemAsync(await PostCommandAsync("never-seen", """{"command":"PING"}"""), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task CommandWhileBrokerIsDownIsStoredPending()
    {
        var response = await PostCommandAsync("known", """{"command":"PING","payload":{"x":[1,2]}}""");
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var queued = await response.Content.ReadFromJsonAsync<Commands.QueuedCommand>(GatewayApp.Json);
        Assert.Equal($"/api/commands/{queued!.Id}", response.Headers.Location!.AbsolutePath);
        var command = await _gateway.GetCommandAsync(queued.Id);
        Assert.Equal(CommandStatus.Pending, command.Status);
        Assert.Equal(2, command.Payload!.Value.GetProperty("x").GetArrayLength());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await _gateway.Http.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _gateway.Http.GetAsync("/health/live")).StatusCode);
    }

    [Theory]
    [InlineData("/api/devices/known/telemetry?limit=0")]
    [InlineData("/api/devices/known/telemetry?limit=1001")]
    [InlineData("/api/devices/known/telemetry?limit=ten")]
    [InlineData("/api/devices/known/telemetry?from=yesterday")]
    [InlineData("/api/devices/known/telemetry?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")]
    [InlineData("/api/devices/known/telemetry?cursor=%%%")]
    [InlineData("/api/devices/known/telemetry?cursor=bm90LWEtbnVtYmVy")]
    [InlineData("/api/devices/known/commands?status=Sleeping")]
    [InlineData("/api/devices/known/commands?cursor=zzz")]
    [InlineData("/api/devices?limit=-5")]
    [InlineData("/api/devices?cursor=!")]
    [InlineData("/api/commands/0190a0b0-0000-7000-8000-000000000001?waitSeconds=-1")]
    [InlineData("/api/commands/0190a0b0-0000-7000-8000-000000000001?waitSeconds=61")]
    [InlineData("/api/commands/0190a0b0-0000-7000-8000-000000000001?waitSeconds=NaN")]
    [InlineData("/api/commands/0190a0b0-0000-7000-8000-000000000001?waitSeconds=Infinity")]
    [InlineData("/api/commands/0190a0b0-0000-7000-8000-000000000001?waitSeconds=soon")]
    public async Task BadQueryIsRejected(string url)
    {
        await AssertProblemAsync(await _gateway.Http.GetAsync(url), HttpStatusCode.BadRequest);
    }

    // The synchronous form takes waitSeconds within the same limits as the waiting GET, and queues nothing otherwise.
    [Theory]
    [InlineData("-1")]
    [InlineData("61")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("soon")]
    public async Task QueueingWithABadWaitIsRejectedAndQueuesNothing(string waitSeconds)
    {
        var response = await _gateway.Http.PostAsync($"/api/devices/known/commands?waitSeconds={waitSeconds}",
            new StringContent("""{"command":"PING"}""", Encoding.UTF8, "application/json"));
        await AssertProblemAsync(response, HttpStatusCode.BadRequest);
        Assert.Contains("waitSeconds", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await using var scope = _gateway.Services.CreateAsyncScope();
        Assert.Equal(0, await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().Commands.CountAsync());
    }

    [Fact]
    public async Task UnknownCommandIs404()
    {
        await AssertProblemAsync(await _gateway.Http.GetAsync($"/api/commands/{Guid.NewGuid()}"), HttpStatusCode.NotFound);
        await AssertProblemAsync(await _gateway.Http.GetAsync("/api/commands/not-a-guid"), HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task SwaggerDocumentsEveryRoute()
    {
        var document = await _gateway.Http.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var paths = document.GetProperty("paths");
        foreach (var route in new[]
        {
            "/api/devices", "/api/devices/{deviceId}", "/api/devices/{deviceId}/commands", "/api/devices/{deviceId}/telemetry", "/api/commands/{id}",
            "/api/commands/bulk", "/api/commands/bulk/{batchId}",
        })
        {
            Assert.True(paths.TryGetProperty(route, out _), $"swagger documents {route}");
        }

        var post = paths.GetProperty("/api/devices/{deviceId}/commands").GetProperty("post");
        Assert.Equal("Queue a command for a device.", post.GetProperty("summary").GetString());
        foreach (var code in new[] { "202", "400", "404", "413" })
        {
            Assert.True(post.GetProperty("responses").TryGetProperty(code, out _), $"POST documents {code}");
        }

        Assert.Equal(HttpStatusCode.OK, (await _gateway.Http.GetAsync("/swagger/index.html")).StatusCode);
    }

    private Task<HttpResponseMessage> PostCommandAsync(string deviceId, string body) =>
        _gateway.Http.PostAsync($"/api/devices/{deviceId}/commands", new StringContent(body, Encoding.UTF8, "application/json"));

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal((int)expected, problem.RootElement.GetProperty("status").GetInt32());
    }
}
