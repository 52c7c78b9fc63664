using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace IotGateway.Bench.Infrastructure;

/// <summary>The few REST calls the benchmarks make, with the answers reduced to what they measure.</summary>
public sealed class GatewayApi : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly HttpClient _http;
    private readonly BenchGateway _gateway;

    public GatewayApi(BenchGateway gateway)
    {
        _gateway = gateway;
        // Many concurrent callers: one pooled connection each rather than queueing behind a small pool.
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) };
        _http = new HttpClient(handler) { BaseAddress = gateway.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        _http.DefaultRequestHeaders.Add("X-API-Key", gateway.ApiKey);
    }

    /// <summary>How many devices GET /api/devices?signedIn=true lists, following the pages (1000 a page).</summary>
    public async Task<int> CountSignedInDevicesAsync(CancellationToken cancellationToken)
    {
        var count = 0;
        string? cursor = null;
        do
        {
            var url = "/api/devices?signedIn=true&limit=1000" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor));
            var page = await GetAsync<DevicePage>(url, cancellationToken);
            count += page.Items.Count;
            cursor = page.NextCursor;
        }
        while (cursor is not null);

        return count;
    }

    /// <summary>POST /api/devices/{id}/commands; returns the command id.</summary>
    public async Task<Guid> QueueCommandAsync(string deviceId, string command, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => _http.PostAsJsonAsync($"/api/devices/{Uri.EscapeDataString(deviceId)}/commands", new { command }, Json, cancellationToken));
        await EnsureStatusAsync(response, HttpStatusCode.Accepted, cancellationToken);
        var queued = await response.Content.ReadFromJsonAsync<QueuedCommand>(Json, cancellationToken);
        return queued?.Id ?? throw new BenchFailure($"POST /api/devices/{deviceId}/commands answered 202 without an id.");
    }

    /// <summary>POST /api/devices/{id}/commands?waitSeconds=…: queues and returns the command once finished (200), or open (202).</summary>
    public async Task<CommandState> QueueCommandAndWaitAsync(string deviceId, string command, TimeSpan wait, CancellationToken cancellationToken)
    {
        var url = $"/api/devices/{Uri.EscapeDataString(deviceId)}/commands?waitSeconds={wait.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        using var response = await SendAsync(() => _http.PostAsJsonAsync(url, new { command }, Json, cancellationToken));
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            await EnsureStatusAsync(response, HttpStatusCode.OK, cancellationToken);
        }

        return await response.Content.ReadFromJsonAsync<CommandState>(Json, cancellationToken)
            ?? throw new BenchFailure($"POST {url} answered {(int)response.StatusCode} with an empty body.");
    }

    /// <summary>GET /api/commands/{id}?waitSeconds=…: returns when the command finishes or the wait runs out.</summary>
    public Task<CommandState> WaitForCommandAsync(Guid id, TimeSpan wait, CancellationToken cancellationToken) =>
        GetAsync<CommandState>($"/api/commands/{id}?waitSeconds={wait.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}", cancellationToken);

    /// <summary>POST /api/commands/bulk for every signed-in device.</summary>
    public async Task<BulkAccepted> QueueCommandForSignedInDevicesAsync(string command, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => _http.PostAsJsonAsync("/api/commands/bulk", new { command, signedIn = true }, Json, cancellationToken));
        await EnsureStatusAsync(response, HttpStatusCode.Accepted, cancellationToken);
        return await response.Content.ReadFromJsonAsync<BulkAccepted>(Json, cancellationToken)
            ?? throw new BenchFailure("POST /api/commands/bulk answered 202 with an empty body.");
    }

    public Task<BulkSummary> GetBulkSummaryAsync(Guid batchId, CancellationToken cancellationToken) =>
        GetAsync<BulkSummary>($"/api/commands/bulk/{batchId}", cancellationToken);

    /// <summary>Any GET, as JSON, for checks that need no type of their own.</summary>
    public Task<JsonElement> GetJsonAsync(string url, CancellationToken cancellationToken) => GetAsync<JsonElement>(url, cancellationToken);

    public void Dispose() => _http.Dispose();

    private async Task<T> GetAsync<T>(string url, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(() => _http.GetAsync(url, cancellationToken));
        await EnsureStatusAsync(response, HttpStatusCode.OK, cancellationToken);
        return await response.Content.ReadFromJsonAsync<T>(Json, cancellationToken)
            ?? throw new BenchFailure($"GET {url} answered 200 with an empty body.");
    }

    /// <summary>A request that cannot reach the gateway usually means it died: say so, with its last output.</summary>
    private async Task<HttpResponseMessage> SendAsync(Func<Task<HttpResponseMessage>> send)
    {
        try
        {
            return await send();
        }
        catch (HttpRequestException e)
        {
            // Give an exiting process a moment to be seen as exited, so the message has its exit code and output.
            await _gateway.WaitForExitAsync(TimeSpan.FromSeconds(2));
            _gateway.ThrowIfExited($"(a request failed: {e.Message})");
            throw new BenchFailure($"The gateway's API did not answer: {e.Message}. Its output:\n{_gateway.OutputTail()}", e);
        }
    }

    private static async Task EnsureStatusAsync(HttpResponseMessage response, HttpStatusCode expected, CancellationToken cancellationToken)
    {
        if (response.StatusCode != expected)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new BenchFailure($"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.PathAndQuery} answered {(int)response.StatusCode} (expected {(int)expected}): {body}");
        }
    }

    private sealed record DevicePage(IReadOnlyList<JsonElement> Items, string? NextCursor);

    private sealed record QueuedCommand(Guid Id);
}

/// <summary>The parts of GET /api/commands/{id} the round trip needs.</summary>
public sealed record CommandState(Guid Id, string Status, DateTimeOffset CreatedAt, DateTimeOffset? PublishedAt, DateTimeOffset? AnsweredAt);

public sealed record BulkAccepted(Guid BatchId, int Count);

public sealed record BulkSummary(Guid BatchId, int Total, IReadOnlyDictionary<string, int> ByStatus)
{
    public int this[string status] => ByStatus.TryGetValue(status, out var count) ? count : 0;

    public override string ToString() => string.Join(", ", ByStatus.Select(kv => $"{kv.Key} {kv.Value}"));
}
