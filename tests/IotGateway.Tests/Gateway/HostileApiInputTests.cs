using System.Text;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Gateway;

// What operators send obeys the limits of what the gateway stores and returns, and what is stored (also by older
// versions, before ingest normalised it) always reads back as whole JSON. The broker is unreachable on purpose.
public sealed class SqliteHostileApiInputTests : HostileApiInputTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresHostileApiInputTests : HostileApiInputTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class HostileApiInputTests : IAsyncLifetime
{
    private GatewayApp _gateway = null!;

    protected abstract DatabaseProvider Provider { get; }

    public async Task InitializeAsync()
    {
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Infrastructure.Requires.PostgreSql();
        }

        _gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false, provider: Provider);
        await using var scope = _gateway.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        db.Devices.Add(new Device { Id = "known", FirstSeen = DateTimeOffset.UtcNow });
        await db.SaveChangesAsync();
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    [SkippableTheory]
    [InlineData("""{"command":"\ud800"}""")]
    [InlineData("""{"command":"PING","payload":{"a":"\ud800"}}""")]
    [InlineData("""{"command":"PING","payload":{"\u0000":1}}""")]
    [InlineData("""{"command":"PING","payload":"x\udc00"}""")]
    [InlineData("""{"command":"PI\u0000NG"}""")]
    [InlineData("""{"command":"PING\nREBOOT"}""")]
    [InlineData("""{"command":"PING\u202E"}""")]
    [InlineData("""{"command":"\u200BPING"}""")]
    public async Task ACommandWithALoneSurrogateOrNulIsRefused(string body)
    {
        await AssertRefusedAsync(await PostAsync("/api/devices/known/commands", body), HttpStatusCode.BadRequest);
        await AssertRefusedAsync(await PostAsync("/api/commands/bulk", body[..^1] + ""","deviceIds":["known"]}"""), HttpStatusCode.BadRequest);
    }

    // Query parameters that reach the database: never a 500, on either provider.
    [SkippableTheory]
    [InlineData("/api/devices?search=a%00b")]
    [InlineData("/api/devices?search=%E2%80%AE")]
    [InlineData("/api/devices?cursor=AA")]
    [InlineData("/api/devices/known/telemetry?from=9999-12-31T23:59:59.9999Z")]
    [InlineData("/api/devices/known/telemetry/aggregate?field=temp&interval=1d&to=0001-01-02T00:00:00Z")]
    [InlineData("/api/devices/known/telemetry/export?format=csv&from=0001-01-01")]
    public async Task AHostileQueryParameterIsA400(string route)
    {
        using var response = await _gateway.Http.GetAsync(route);
        await AssertRefusedAsync(response, HttpStatusCode.BadRequest);
    }

    [SkippableTheory]
    [InlineData(65)]
    [InlineData(79)]
    [InlineData(500)]
    public async Task APayloadNestedDeeperThanStoredJsonMayBeIsRefused(int depth)
    {
        var payload = string.Concat(Enumerable.Repeat("[", depth)) + string.Concat(Enumerable.Repeat("]", depth));
        await AssertRefusedAsync(await PostAsync("/api/devices/known/commands", $$"""{"command":"PING","payload":{{payload}}}"""), HttpStatusCode.BadRequest);
        await AssertRefusedAsync(await PostAsync("/api/commands/bulk", $$"""{"command":"PING","payload":{{payload}},"deviceIds":["known"]}"""),
            HttpStatusCode.BadRequest);
    }

    [SkippableFact]
    public async Task APayloadOverTheLimitIsRefusedOnBothRoutesAlike()
    {
        var payload = JsonSerializer.Serialize(new string('x', Api.RequestLimits.MaxCommandPayloadBytes));
        var single = await PostAsync("/api/devices/known/commands", $$"""{"command":"PING","payload":{{payload}}}""");
        var bulk = await PostAsync("/api/commands/bulk", $$"""{"command":"PING","payload":{{payload}},"deviceIds":["known"]}""");
        await AssertRefusedAsync(single, HttpStatusCode.BadRequest);
        await AssertRefusedAsync(bulk, HttpStatusCode.BadRequest);
        Assert.Contains("payload must be at most", await single.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Contains("payload must be at most", await bulk.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task ABulkDeviceIdWithALoneSurrogateIsRefused() =>
        await AssertRefusedAsync(await PostAsync("/api/commands/bulk", """{"command":"PING","deviceIds":["known","\udc00"]}"""), HttpStatusCode.BadRequest);

    [SkippableTheory]
    [InlineData("a%20b")]
    [InlineData("a%25b")]
    [InlineData("a%3Fb")]
    [InlineData("a%E2%80%A8b")]
    [InlineData("a%E2%80%AEb")]
    [InlineData("a%EF%BF%BDb")]
    public async Task ADeviceIdIngestWouldRefuseIsRefusedByTheApiToo(string escaped)
    {
        foreach (var url in new[] { $"/api/devices/{escaped}", $"/api/devices/{escaped}/telemetry", $"/api/devices/{escaped}/commands" })
        {
            await AssertRefusedAsync(await _gateway.Http.GetAsync(url), HttpStatusCode.BadRequest);
        }
    }

    [SkippableFact]
    public async Task ADeviceIdInAnotherScriptIsReachable()
    {
        await using (var scope = _gateway.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
            db.Devices.Add(new Device { Id = "温度計-1.a:b@c~d_e", FirstSeen = DateTimeOffset.UtcNow });
            await db.SaveChangesAsync();
        }

        using var response = await _gateway.Http.GetAsync($"/api/devices/{Uri.EscapeDataString("温度計-1.a:b@c~d_e")}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    // Rows as an older version stored them: a lone surrogate escape, NUL, JSON deeper than the reader's limit, a huge
    // number. Each route answers 200 with a body that parses.
    [SkippableFact]
    public async Task StoredJsonThatNoReaderWouldTakeIsStillReturnedAsWholeJson()
    {
        var deep = string.Concat(Enumerable.Repeat("[", 70)) + string.Concat(Enumerable.Repeat("]", 70));
        var atLimit = string.Concat(Enumerable.Repeat("{\"a\":", 64)) + "1" + string.Concat(Enumerable.Repeat("}", 64));
        var id = Guid.NewGuid();
        await using (var scope = _gateway.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
            foreach (var payload in new[] { """{"a":"\ud800","b":"\u0000"}""", deep, atLimit, """{"n":1e400,"m":-1e400}""", """{"\udc00":1}""" })
            {
                db.Telemetry.Add(new TelemetryReading { DeviceId = "known", ReceivedAt = DateTimeOffset.UtcNow, Topic = TopicRoots.Default.For("known").Data, Payload = payload, Format = PayloadFormat.Json });
            }

            db.Commands.Add(new Command
            {
                Id = id, DeviceId = "known", Name = "PING", Payload = atLimit, Status = CommandStatus.Completed, TtlSeconds = 60,
                CreatedAt = DateTimeOffset.UtcNow, ExpiresAt = DateTimeOffset.UtcNow.AddMinutes(1), Result = "\uFFFD", Response = """{"commandResult":"\udbff"}""",
            });
            await db.SaveChangesAsync();
        }

        foreach (var url in new[] { "/api/devices/known/telemetry", $"/api/commands/{id}", "/api/devices/known/commands" })
        {
            using var response = await _gateway.Http.GetAsync(url);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{url}: {(int)response.StatusCode} {body}");
            using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 256 });
        }
    }

    private Task<HttpResponseMessage> PostAsync(string url, string body) =>
        _gateway.Http.PostAsync(url, new StringContent(body, Encoding.UTF8, "application/json"));

    private static async Task AssertRefusedAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"expected {(int)expected}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
