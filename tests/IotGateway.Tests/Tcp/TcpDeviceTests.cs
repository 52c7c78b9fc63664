using System.Globalization;
using System.Net.Sockets;
using System.Text;
using IotGateway.Telemetry;

namespace IotGateway.Tests.Tcp;

// The article's TCP devices, played with raw sockets the way tcp/iot-device.js writes: objects back to back, one
// write each; and the bad input a listener on the internet meets.
public sealed class TcpDeviceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task SeveralObjectsInOneSegmentAndNewlineDelimitedJsonAreRead()
    {
        await using var gateway = await TcpGateway.StartAsync();
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("tcp-2") + "\n" + Data("tcp-2", 1) + "\r\n" + Data("tcp-2", 2) + Data("tcp-2", 3) + "\n");
        await gateway.App.WaitForDeviceAsync("tcp-2", d => d.SignedIn && d.TelemetryCount == 3, "all three readings of one segment stored");
    }

    [Theory]
    [InlineData("not json at all", "bad input")]
    [InlineData("[1,2,3]", "bad input")]
    [InlineData("""{"messageType":"SIGNUP"}""", "does not name a device")]
    [InlineData("""{"deviceId":"a/b","messageType":"SIGNUP"}""", "device id is not usable")]
    [InlineData("""{"deviceId":"a+b","messageType":"SIGNUP"}""", "device id is not usable")]
    [InlineData("""{"deviceId":"","messageType":"SIGNUP"}""", "device id is not usable")]
    [InlineData("""{"deviceId":"x\ud800","messageType":"SIGNUP"}""", "does not name a device")]
    public async Task BadFirstInputIsLoggedAndTheConnectionClosed(string input, string reason)
    {
        await using var gateway = await TcpGateway.StartAsync();
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(input);
        Assert.True(await device.ClosedByGatewayAsync(), "the gateway closes the connection");
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains(reason), Timeout, $"the log says '{reason}'");
        await AssertStillServesAsync(gateway, "after-bad-input");
    }

    [Fact]
    public async Task AnObjectLargerThanThePayloadLimitClosesTheConnection()
    {
        await using var gateway = await TcpGateway.StartAsync(s => s["Ingest:MaxPayloadBytes"] = "1024");
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("big"));
        await device.SendAsync($$"""{"deviceId":"big","messageType":"DATA","blob":"{{new string('x', 4000)}}"}""");
        Assert.True(await device.ClosedByGatewayAsync());
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("larger than 1024 bytes"), Timeout, "the reason is logged");
        await gateway.App.WaitForDeviceAsync("big", d => !d.SignedIn && d.TelemetryCount == 0, "signed out, nothing stored");
    }

    [Fact]
    public async Task ANeverEndingObjectIsCutOffAtThePayloadLimit()
    {
        await using var gateway = await TcpGateway.StartAsync(s => s["Ingest:MaxPayloadBytes"] = "2048");
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("endless") + """{"deviceId":"endless","messageType":"DATA","values":[""");
        var closed = false;
        for (var i = 0; i < 1000 && !closed; i++)
        {
            closed = !await device.TrySendAsync("1,2,3,4,5,6,7,8,");
        }

        Assert.True(await device.ClosedByGatewayAsync(), "closed once the object passes the limit");
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("larger than 2048 bytes"), Timeout, "the reason is logged");
    }

    [Fact]
    public async Task BeforeItNamesADeviceAConnectionMaySendOnlyASmallObject()
    {
        await using var gateway = await TcpGateway.StartAsync(s => s["Tcp:MaxFirstMessageBytes"] = "1024");
        var padding = new string('x', 1500);

        // Unnamed: the limit is Tcp:MaxFirstMessageBytes, so thousands of idle connections cannot each hold a payload's worth.
        using var stranger = await gateway.ConnectAsync();
        await stranger.SendAsync($$"""{"pad":"{{padding}}","deviceId":"first-big","messageType":"SIGNUP"}""");
        Assert.True(await stranger.ClosedByGatewayAsync(), "the gateway closes the connection");
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("larger than 1024 bytes (Tcp:MaxFirstMessageBytes)"), Timeout, "the reason is logged");

        // Named: the payload limit applies again.
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("first-small") + $$"""{"deviceId":"first-small","messageType":"DATA","pad":"{{padding}}"}""");
        await gateway.App.WaitForDeviceAsync("first-small", d => d.SignedIn && d.TelemetryCount == 1, "its larger reading stored");
    }

    [Fact]
    public async Task AConnectionThatNamesNoDeviceIsClosedAfterTheFirstMessageTimeout()
    {
        await using var gateway = await TcpGateway.StartAsync(s => s["Tcp:FirstMessageTimeoutSeconds"] = "0.5");
        using var silent = await gateway.ConnectAsync();
        Assert.True(await silent.ClosedByGatewayAsync());
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("no device named itself within 0.5 s"), Timeout, "the reason is logged");
    }

    [Fact]
    public async Task ADeviceSilentPastTheIdleTimeoutIsSignedOut()
    {
        await using var gateway = await TcpGateway.StartAsync(s => s["Tcp:IdleTimeoutSeconds"] = "1");
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("quiet"));
        await gateway.App.WaitForDeviceAsync("quiet", d => d.SignedIn, "signed in");
        Assert.True(await device.ClosedByGatewayAsync());
        await gateway.App.WaitForDeviceAsync("quiet", d => !d.SignedIn, "signed out after the idle timeout");
        Assert.True(gateway.App.Logs.Contains("silent for 1 s"));
    }

    [Fact]
    public async Task AMessageNamingAnotherDeviceIsRefusedAndTheConnectionGoesOn()
    {
        await using var gateway = await TcpGateway.StartAsync();
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("honest") + Data("someone-else", 1) + Data("honest", 2));
        await gateway.App.WaitForDeviceAsync("honest", d => d.TelemetryCount == 1, "its own reading stored");
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("sent a message naming 'someone-else'"), Timeout, "the refusal is logged");
        Assert.Null(await gateway.App.GetDeviceAsync("someone-else"));
        Assert.True(await device.TrySendAsync(Data("honest", 3)));
        await gateway.App.WaitForDeviceAsync("honest", d => d.TelemetryCount == 2, "the connection still works");
    }

    [Fact]
    public async Task ADeviceWritingManyBadObjectsIsCountedButLoggedOnce()
    {
        await using var gateway = await TcpGateway.StartAsync();
        using var device = await gateway.ConnectAsync();
        await device.SendAsync(Signup("noisy") + string.Concat(Enumerable.Repeat(Data("someone-else", 1), 200)) + Data("noisy", 2));
        await gateway.App.WaitForDeviceAsync("noisy", d => d.TelemetryCount == 1, "its own reading, written after the bad ones, stored");

        var metrics = await gateway.App.Http.GetStringAsync("/metrics");
        Assert.Equal(200, MetricsDocumentedTests.Value(metrics, "iot_gateway_messages_rejected_total{reason=\"tcp-device-mismatch\"}"));
        Assert.Single(gateway.App.Logs.Lines, line => line.Contains("tcp-device-mismatch", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ConnectionsBeyondTheLimitAreClosedAtOnce()
    {
        await using var gateway = await TcpGateway.StartAsync(s => s["Tcp:MaxConnections"] = "2");
        using var a = await gateway.ConnectAsync();
        using var b = await gateway.ConnectAsync();
        await a.SendAsync(Signup("limit-a"));
        await b.SendAsync(Signup("limit-b"));
        await gateway.App.WaitForDeviceAsync("limit-b", d => d.SignedIn, "two connections in");

        using var c = await gateway.ConnectAsync();
        Assert.True(await c.ClosedByGatewayAsync(), "the third is closed");
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("TCP connection limit reached"), Timeout, "the limit is logged");

        a.Close();
        await gateway.App.WaitForDeviceAsync("limit-a", d => !d.SignedIn, "a slot is free again");
        using var d = await gateway.ConnectAsync();
        await d.SendAsync(Signup("limit-d"));
        await gateway.App.WaitForDeviceAsync("limit-d", x => x.SignedIn, "a new connection is accepted");
    }

    internal static async Task AssertStillServesAsync(TcpGateway gateway, string deviceId)
    {
        using var good = await gateway.ConnectAsync();
        await good.SendAsync(Signup(deviceId) + Data(deviceId, 1));
        await gateway.App.WaitForDeviceAsync(deviceId, d => d.TelemetryCount == 1, "a well-behaved device is still served");
    }

    internal static string Signup(string deviceId) => $$"""{"deviceId":"{{deviceId}}","messageType":"SIGNUP"}""";

    internal static string Data(string deviceId, double temp) =>
        string.Create(CultureInfo.InvariantCulture, $$"""{"deviceId":"{{deviceId}}","messageType":"DATA","temp":{{temp}},"lat":48.015722,"lng":-88.625528}""");
}

// What TCP devices store, on both providers: readings, presence, and whatever a hostile device writes once signed in.
public sealed class SqliteTcpDeviceStorageTests : TcpDeviceStorageTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresTcpDeviceStorageTests : TcpDeviceStorageTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class TcpDeviceStorageTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task ArticleDeviceSignsUpAndItsReadingsAreStoredWhateverTheSegmentBoundaries()
    {
        await using var gateway = await TcpGateway.StartAsync(provider: Provider);
        using var device = await gateway.ConnectAsync();

        var stream = Encoding.UTF8.GetBytes(TcpDeviceTests.Signup("tcp-1") + TcpDeviceTests.Data("tcp-1", 23.6) + TcpDeviceTests.Data("tcp-1", 23.7) + TcpDeviceTests.Data("tcp-1", 23.8));
        // Cut inside the first object, inside a string of the second, and between two digits of the third.
        int[] cuts = [7, 50, stream.Length - 12];
        var start = 0;
        foreach (var cut in cuts.Append(stream.Length))
        {
            await device.SendAsync(stream.AsMemory(start, cut - start));
            start = cut;
        }

        var seen = await gateway.App.WaitForDeviceAsync("tcp-1", d => d.SignedIn && d.TelemetryCount == 3, "signed in with three readings");
        Assert.NotNull(seen.LastSeen);
        var page = await gateway.App.Http.GetFromJsonAsync<Page<ReadingView>>("/api/devices/tcp-1/telemetry", GatewayApp.Json);
        Assert.Equal([23.8, 23.7, 23.6], page!.Items.Select(r => r.Payload.GetProperty("temp").GetDouble()));
        Assert.All(page.Items, r => Assert.Equal("tcp", r.Topic));

        device.Close();
        await gateway.App.WaitForDeviceAsync("tcp-1", d => !d.SignedIn, "the closed connection signs the device out");
    }

    [SkippableFact]
    public async Task ASecondConnectionOfTheSameDeviceReplacesTheFirst()
    {
        await using var gateway = await TcpGateway.StartAsync(provider: Provider);
        using var first = await gateway.ConnectAsync();
        await first.SendAsync(TcpDeviceTests.Signup("twice"));
        await gateway.App.WaitForDeviceAsync("twice", d => d.SignedIn, "signed in");

        using var second = await gateway.ConnectAsync();
        await second.SendAsync(TcpDeviceTests.Signup("twice"));
        Assert.True(await first.ClosedByGatewayAsync(), "the first connection is closed");
        await second.SendAsync(TcpDeviceTests.Data("twice", 1));
        var device = await gateway.App.WaitForDeviceAsync("twice", d => d.TelemetryCount == 1, "the second connection's reading stored");
        Assert.True(device.SignedIn, "the replaced connection's end does not sign the device out");
    }

    [SkippableFact]
    public async Task AReadingSentAgainWithTheSameMessageIdIsStoredOnce()
    {
        await using var gateway = await TcpGateway.StartAsync(provider: Provider);
        using var device = await gateway.ConnectAsync();
        const string reading = """{"deviceId":"tcp-dup","messageType":"DATA","messageId":"m-1","temp":20.5}""";
        await device.SendAsync(TcpDeviceTests.Signup("tcp-dup") + reading + reading
            + """{"deviceId":"tcp-dup","messageType":"DATA","messageId":"m-2","temp":20.6}""");
        await gateway.App.WaitForDeviceAsync("tcp-dup", d => d.TelemetryCount == 2, "two distinct readings stored");

        // Sent again on a new connection (a device that resends what it is not sure went out).
        device.Close();
        using var again = await gateway.ConnectAsync();
        await again.SendAsync(TcpDeviceTests.Signup("tcp-dup") + reading + TcpDeviceTests.Data("tcp-dup", 21));
        // The new reading, written after the repeated one, is stored: so the repeated one was handled before it.
        var page = await Eventually.UntilAsync(
            async () => await gateway.App.Http.GetFromJsonAsync<Page<ReadingView>>("/api/devices/tcp-dup/telemetry", GatewayApp.Json),
            p => p!.Items.Any(r => r.Payload.GetProperty("temp").GetDouble() == 21), Timeout, "the new reading stored");
        Assert.Equal(3, page!.Items.Count);
        Assert.Equal(3, (await gateway.App.GetDeviceAsync("tcp-dup"))!.TelemetryCount);
    }

    // After a good SIGNUP, what a broken or hostile device may write next. Each ends stored (as MQTT would store it:
    // bytes that are not UTF-8 JSON as binary) or refused (logged, the connection closed or the message rejected),
    // never in a stalled ingest writer, an unready gateway or a read route that fails.
    public static TheoryData<string, byte[]> HostileAfterSignup() => new()
    {
        { "invalid UTF-8 in a string", [.. "{\"deviceId\":\"h\",\"messageType\":\"DATA\",\"temp\":\""u8, 0xFF, 0xFE, .. "\"}"u8] },
        { "nesting 10,000 deep", Encoding.UTF8.GetBytes("{\"deviceId\":\"h\",\"messageType\":\"DATA\",\"a\":" + new string('[', 10_000)) },
        { "an answer of lone surrogates", Encoding.UTF8.GetBytes("""{"deviceId":"h","messageType":"commandResp","commandResult":"\udc00","uuid":"\ud800","command":"PING"}""") },
        { "an answer to no command", Encoding.UTF8.GetBytes("""{"deviceId":"h","messageType":"commandResp","commandResult":"PONG","uuid":"not-a-guid","command":"PING"}""") },
        { "a BOM and NUL bytes", [0xEF, 0xBB, 0xBF, 0, 0, .. "{}"u8] },
        { "a device id of 10,000 characters", Encoding.UTF8.GetBytes($$"""{"deviceId":"{{new string('d', 10_000)}}","messageType":"DATA"}""") },
        { "right-to-left and zero-width characters in the id", Encoding.UTF8.GetBytes("{\"deviceId\":\"h\u202E\u200B\",\"messageType\":\"DATA\"}") },
        { "an unknown message type", Encoding.UTF8.GetBytes("""{"deviceId":"h","messageType":"\u0000DROP TABLE"}""") },
        { "a second deviceId naming another device", Encoding.UTF8.GetBytes("""{"deviceId":"h","messageType":"DATA","deviceId":"victim","temp":1}""") },
    };

    [SkippableTheory]
    [MemberData(nameof(HostileAfterSignup))]
    public async Task HostileInputAfterSignupNeverStallsIngest(string what, byte[] input)
    {
        await using var gateway = await TcpGateway.StartAsync(provider: Provider);
        using (var device = await gateway.ConnectAsync())
        {
            await device.SendAsync(TcpDeviceTests.Signup("h"));
            await gateway.App.WaitForDeviceAsync("h", d => d.SignedIn, "signed in");
            await device.SendAsync(input);
            // A well-behaved device is served while the hostile one is still connected (or was just dropped).
            await TcpDeviceTests.AssertStillServesAsync(gateway, "after-" + what.Replace(' ', '-').Replace(',', '-'));
        }

        await gateway.App.WaitUntilReadyAsync();
        Assert.True((await gateway.App.GetDeviceAsync("h"))!.TelemetryCount <= 1, "at most the one message is stored");
        Assert.Null(await gateway.App.GetDeviceAsync("victim"));
        if (what.StartsWith("a second deviceId", StringComparison.Ordinal))
        {
            Assert.Equal(0, (await gateway.App.GetDeviceAsync("h"))!.TelemetryCount);
        }
        foreach (var route in new[] { "/api/devices/h/telemetry", "/api/devices/h/telemetry/export?format=csv", "/api/devices/h/telemetry/export?format=ndjson", "/api/devices?search=h" })
        {
            using var response = await gateway.App.Http.GetAsync(route);
            Assert.True(response.IsSuccessStatusCode, $"GET {route}: {(int)response.StatusCode}");
        }
    }
}

// The gateway (embedded broker) with its TCP listener on a free port.
internal sealed class TcpGateway : IAsyncDisposable
{
    private TcpGateway(GatewayApp app, int port)
    {
        App = app;
        Port = port;
    }

    public GatewayApp App { get; }

    public int Port { get; }

    // The embedded broker's port (0 when the gateway uses an external broker).
    public int MqttPort { get; private init; }

    public static async Task<TcpGateway> StartAsync(Action<Dictionary<string, string?>>? configure = null,
        DatabaseProvider provider = DatabaseProvider.Sqlite, bool kestrel = false)
    {
        if (provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        var port = FreePort.OnLoopback();
        var (app, mqttPort) = await GatewayApp.StartEmbeddedAsync(s => Listen(s, port, configure), provider, kestrel);
        return new TcpGateway(app, port) { MqttPort = mqttPort };
    }

    // A gateway on an external broker (several instances share a database through it), with its own TCP port.
    public static async Task<TcpGateway> StartAsync(string broker, Action<Dictionary<string, string?>> configure)
    {
        var port = FreePort.OnLoopback();
        var app = await GatewayApp.StartAsync(broker, s => Listen(s, port, configure), provider: DatabaseProvider.PostgreSQL);
        return new TcpGateway(app, port);
    }

    private static void Listen(Dictionary<string, string?> settings, int port, Action<Dictionary<string, string?>>? configure)
    {
        settings["Tcp:Port"] = port.ToString(CultureInfo.InvariantCulture);
        // Connections and their ends are Debug lines; the tests read why a connection was closed.
        settings["Logging:LogLevel:IotGateway.Tcp"] = "Debug";
        configure?.Invoke(settings);
    }

    public async Task<RawTcpDevice> ConnectAsync(int? receiveBufferBytes = null)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBufferBytes is { } bytes)
        {
            socket.ReceiveBufferSize = bytes;
        }

        await socket.ConnectAsync("127.0.0.1", Port);
        return new RawTcpDevice(socket);
    }

    public ValueTask DisposeAsync() => App.DisposeAsync();
}

// A device's side of the socket, with nothing of the gateway's code in it but the framer (from the shared protocol
// library) to read what the gateway writes.
internal sealed class RawTcpDevice(Socket socket) : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    private readonly IotGateway.Protocol.JsonObjectFramer _framer = new(1024 * 1024);
    private readonly Queue<(System.Text.Json.JsonElement Json, int ObjectsInItsRead)> _received = new();
    private byte[] _unread = [];

    public Socket Socket => socket;

    // The next JSON object the gateway wrote, with how many objects the read that brought it held (the article's
    // device parses each read as one command, so that must be 1).
    public async Task<(System.Text.Json.JsonElement Json, int ObjectsInItsRead)> ReceiveAsync(TimeSpan? timeout = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? Timeout);
        var buffer = new byte[65536];
        while (_received.Count == 0)
        {
            var read = await socket.ReceiveAsync(buffer, deadline.Token);
            if (read == 0)
            {
                throw new IOException("the gateway closed the connection");
            }

            var sequence = new System.Buffers.ReadOnlySequence<byte>([.. _unread, .. buffer.AsSpan(0, read)]);
            var found = new List<System.Text.Json.JsonElement>();
            while (_framer.TryRead(ref sequence, out var json) == IotGateway.Protocol.FrameStatus.Object)
            {
                found.Add(System.Text.Json.JsonDocument.Parse(System.Buffers.BuffersExtensions.ToArray(json)).RootElement.Clone());
            }

            _unread = System.Buffers.BuffersExtensions.ToArray(sequence);
            foreach (var json in found)
            {
                _received.Enqueue((json, found.Count));
            }
        }

        return _received.Dequeue();
    }

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(ReadOnlyMemory<byte> bytes) => await socket.SendAsync(bytes);

    // False when the gateway has closed the connection under it.
    public async Task<bool> TrySendAsync(string text)
    {
        try
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(text));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    // Reads (and discards) until the gateway closes the connection; false if it is still open at the deadline.
    public async Task<bool> ClosedByGatewayAsync()
    {
        var buffer = new byte[4096];
        using var deadline = new CancellationTokenSource(Timeout);
        try
        {
            while (await socket.ReceiveAsync(buffer, deadline.Token) > 0)
            {
            }

            return true;
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public void Close() => socket.Close();

    public void Dispose() => socket.Dispose();
}
