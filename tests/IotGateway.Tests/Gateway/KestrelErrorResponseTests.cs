using System.Net.Sockets;
using System.Text;

namespace IotGateway.Tests.Gateway;

// Requests Kestrel refuses before any middleware runs (headers over its limit, a malformed request line, a path too
// long) still get problem details, like every other error of the API. Only a real Kestrel shows this.
public sealed class KestrelErrorResponseTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task RequestsKestrelRefusesGetProblemDetailsAndTheRestIsUntouched()
    {
        using var data = new TempDirectory("iotgw-kestrel-");
        await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, data.Path, new Dictionary<string, string>
        {
            ["BROKER"] = "embedded",
            ["Mqtt__Embedded__Port"] = FreePort.OnLoopback().ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["Api__Keys__0__Key"] = GatewayApp.OperatorKey,
        });
        await gateway.WaitUntilReadyAsync(Timeout);
        var address = await gateway.WaitUntilListeningAsync(Timeout);

        var tooLarge = await SendAsync(address, $"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: {new string('a', 40_000)}\r\n\r\n");
        AssertProblem(tooLarge, 431);
        AssertProblem(await SendAsync(address, "GARBAGE\r\n\r\n"), 400);
        AssertProblem(await SendAsync(address, "GET /health/live HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"), 400);
        AssertProblem(await SendAsync(address, $"GET /{new string('a', 10_000)} HTTP/1.1\r\nHost: x\r\n\r\n"), 414);

        // Answers the application writes itself pass through as they were, chunked bodies included.
        var live = await SendAsync(address, "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", live, StringComparison.Ordinal);
        Assert.Contains("\"status\":\"Healthy\"", live, StringComparison.Ordinal);
        var unauthorized = await SendAsync(address, "GET /api/devices HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 401 ", unauthorized, StringComparison.Ordinal);
        Assert.DoesNotContain(gateway.Output, line => line.Contains("Exception", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nDate: x\r\n\r\n")] // kept alive: not Kestrel's refusal
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\nmore")]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n")]
    [InlineData("\0\0\0\u0004\u0001\0\0\0\0")]
    public void OtherBytesAreNotRewritten(string bytes) => Assert.Null(KestrelErrorResponses.Rewrite(Encoding.ASCII.GetBytes(bytes)));

    private static void AssertProblem(string response, int status)
    {
        Assert.StartsWith($"HTTP/1.1 {status} ", response, StringComparison.Ordinal);
        var split = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var head = response[..split];
        Assert.Contains("Content-Type: application/problem+json", head, StringComparison.Ordinal);
        var body = response[(split + 4)..];
        Assert.Contains($"Content-Length: {Encoding.UTF8.GetByteCount(body)}", head, StringComparison.Ordinal);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(status, problem.RootElement.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.RootElement.GetProperty("detail").GetString()));
    }

    // Raw bytes, because HttpClient would refuse to send most of these; reads until the server closes.
    private static async Task<string> SendAsync(Uri address, string request)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(address.Host, address.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request));
        using var deadline = new CancellationTokenSource(Timeout);
        var received = new MemoryStream();
        var buffer = new byte[8192];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, deadline.Token)) > 0)
        {
            received.Write(buffer, 0, read);
        }

        return Encoding.UTF8.GetString(received.ToArray());
    }
}
