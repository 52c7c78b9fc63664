using System.Diagnostics;

namespace IotGateway.Tests.Infrastructure;

// One Server-Sent Events stream read as a browser would: every `data:` line parsed as JSON and kept with the moment it
// arrived (Stopwatch timestamp), comment lines kept too, until the server ends the stream.
public sealed class EventStreamClient : IAsyncDisposable
{
    private readonly Lock _gate = new();
    private readonly List<(JsonElement Data, long ArrivedAt)> _events = [];
    private readonly List<string> _comments = [];
    private readonly HttpResponseMessage _response;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reading;

    private EventStreamClient(HttpResponseMessage response, Stream body)
    {
        _response = response;
        _reading = ReadAsync(body);
    }

    public HttpResponseMessage Response => _response;

    // Completes when the server has ended the stream (or the connection broke).
    public Task Ended => _reading;

    public IReadOnlyList<JsonElement> Events
    {
        get
        {
            lock (_gate)
            {
                return [.. _events.Select(e => e.Data)];
            }
        }
    }

    public static async Task<EventStreamClient> OpenAsync(HttpClient http, string url)
    {
        var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            // Read only when it failed: a stream that opened never ends.
            Assert.Fail($"GET {url}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var client = new EventStreamClient(response, await response.Content.ReadAsStreamAsync());
        // The server writes a comment first: once it is here, the subscription is in place.
        await Eventually.UntilAsync(() => client.SawComment("connected"), TimeSpan.FromSeconds(15), "the stream says it is connected");
        return client;
    }

    public bool SawComment(string text)
    {
        lock (_gate)
        {
            return _comments.Contains(text);
        }
    }

    // The first event (of all received so far, then of those to come) that matches, and when it arrived.
    public Task<(JsonElement Data, long ArrivedAt)> WaitForAsync(Func<JsonElement, bool> match, TimeSpan timeout, string because) =>
        Eventually.UntilAsync(() =>
        {
            lock (_gate)
            {
                foreach (var e in _events)
                {
                    if (match(e.Data))
                    {
                        return Task.FromResult<(JsonElement, long)?>(e);
                    }
                }
            }

            return Task.FromResult<(JsonElement, long)?>(null);
        }, timeout, because);

    private async Task ReadAsync(Stream body)
    {
        try
        {
            using var reader = new StreamReader(body);
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                var arrived = Stopwatch.GetTimestamp();
                lock (_gate)
                {
                    if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        _events.Add((JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone(), arrived));
                    }
                    else if (line.StartsWith(':'))
                    {
                        _comments.Add(line[1..].Trim());
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or HttpRequestException)
        {
            // Closed by us, or cut by the server.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _response.Dispose();
        await _reading;
        _stop.Dispose();
    }
}
