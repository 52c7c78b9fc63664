using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using DeviceSimulator.Devices;
using DeviceSimulator.Tcp;

namespace IotGateway.Tests.Simulator;

// The simulator's TCP device (--transport tcp) against a stand-in for the server: a plain socket.
public sealed class TcpSimulatedDeviceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task SignsUpSendsReadingsAndAnswersCommandsTwoInOneWrite()
    {
        await using var server = new StandInServer();
        await using var device = server.StartDevice("tcp-sim-1", interval: TimeSpan.FromSeconds(0.2));
        var connection = await server.AcceptAsync();

        var signup = await connection.ReadAsync();
        Assert.Equal("tcp-sim-1", signup.GetProperty("deviceId").GetString());
        Assert.Equal("SIGNUP", signup.GetProperty("messageType").GetString());
        var reading = await connection.ReadUntilAsync("DATA");
        Assert.True(reading.GetProperty("temp").GetDouble() > -20);
        Assert.False(string.IsNullOrEmpty(reading.GetProperty("messageId").GetString()));

        // The article's device would choke on two commands in one segment; this one reads them as two.
        await connection.WriteAsync("""{"uuid":"c-1","command":"PING"}{"uuid":"c-2","command":"NOPE"}""");
        var first = await connection.ReadUntilAsync("commandResp");
        var second = await connection.ReadUntilAsync("commandResp");
        Assert.Equal(("c-1", "PONG"), (first.GetProperty("uuid").GetString(), first.GetProperty("commandResult").GetString()));
        Assert.Equal(("c-2", "ERROR_UNKNOWN_COMMAND"), (second.GetProperty("uuid").GetString(), second.GetProperty("commandResult").GetString()));
        Assert.Equal("PING", first.GetProperty("command").GetString());
    }

    [Fact]
    public async Task ACommandSentAgainIsAnsweredAgainButNotExecutedTwice()
    {
        await using var server = new StandInServer();
        await using var device = server.StartDevice("tcp-sim-2", interval: TimeSpan.FromSeconds(30));
        var connection = await server.AcceptAsync();
        await connection.ReadUntilAsync("SIGNUP");

        await connection.WriteAsync("""{"uuid":"c-1","command":"SET_INTERVAL","payload":{"seconds":60}}""");
        Assert.Equal("OK", (await connection.ReadUntilAsync("commandResp")).GetProperty("commandResult").GetString());
        await connection.WriteAsync("""{"uuid":"c-2","command":"SET_INTERVAL","payload":{"seconds":90}}""");
        await connection.ReadUntilAsync("commandResp");

        // c-1 again: the same answer, and the interval stays at 90 s (executing it again would set 60 s).
        await connection.WriteAsync("""{"uuid":"c-1","command":"SET_INTERVAL","payload":{"seconds":60}}""");
        var again = await connection.ReadUntilAsync("commandResp");
        Assert.Equal(("c-1", "OK"), (again.GetProperty("uuid").GetString(), again.GetProperty("commandResult").GetString()));
        Assert.Equal(TimeSpan.FromSeconds(90), ((TcpSimulatedDevice)device.Device).Interval);
    }

    [Fact]
    public async Task ReconnectsAndSignsUpAgainWhenTheServerDropsIt()
    {
        await using var server = new StandInServer();
        await using var device = server.StartDevice("tcp-sim-3", interval: TimeSpan.FromSeconds(30));
        var first = await server.AcceptAsync();
        await first.ReadUntilAsync("SIGNUP");
        first.Dispose();

        var second = await server.AcceptAsync();
        Assert.Equal("SIGNUP", (await second.ReadAsync()).GetProperty("messageType").GetString());
    }

    [Fact]
    public async Task RebootAnswersThenClosesTheConnectionAndComesBack()
    {
        await using var server = new StandInServer();
        await using var device = server.StartDevice("tcp-sim-4", interval: TimeSpan.FromSeconds(30));
        var first = await server.AcceptAsync();
        await first.ReadUntilAsync("SIGNUP");
        await first.WriteAsync("""{"uuid":"r-1","command":"REBOOT"}""");
        Assert.Equal("REBOOTING", (await first.ReadUntilAsync("commandResp")).GetProperty("commandResult").GetString());
        Assert.True(await first.EndsAsync(), "the device closes its connection after answering REBOOT");

        var second = await server.AcceptAsync();
        Assert.Equal("SIGNUP", (await second.ReadAsync()).GetProperty("messageType").GetString());
    }

    private sealed class StandInServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<IAsyncDisposable> _owned = [];

        public StandInServer() => _listener.Start();

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public RunningTcpDevice StartDevice(string deviceId, TimeSpan interval)
        {
            var device = new RunningTcpDevice(new DeviceSettings
            {
                Broker = BrokerAddress.Parse("mqtt://127.0.0.1:1"),
                Transport = DeviceTransport.Tcp,
                TcpServer = new DnsEndPoint("127.0.0.1", Port),
                DeviceId = deviceId,
                Interval = interval,
                FirstWindowDelay = interval,
            });
            return device;
        }

        public async Task<Connection> AcceptAsync()
        {
            var socket = await _listener.AcceptSocketAsync().WaitAsync(Timeout);
            var connection = new Connection(socket);
            _owned.Add(connection);
            return connection;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var owned in _owned)
            {
                await owned.DisposeAsync();
            }

            _listener.Stop();
        }
    }

    private sealed class Connection : IAsyncDisposable, IDisposable
    {
        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        private readonly Channel<JsonElement> _objects = Channel.CreateUnbounded<JsonElement>();
        private readonly Task _reading;

        public Connection(Socket socket)
        {
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
            _reading = ReadLoopAsync();
        }

        public Task WriteAsync(string json) => _stream.WriteAsync(Encoding.UTF8.GetBytes(json)).AsTask();

        public async Task<JsonElement> ReadAsync() => await _objects.Reader.ReadAsync().AsTask().WaitAsync(Timeout);

        public async Task<JsonElement> ReadUntilAsync(string messageType)
        {
            while (true)
            {
                var next = await ReadAsync();
                if (next.GetProperty("messageType").GetString() == messageType)
                {
                    return next;
                }
            }
        }

        // True when the peer closes the connection before the deadline.
        public async Task<bool> EndsAsync()
        {
            await _reading.WaitAsync(Timeout);
            return true;
        }

        private async Task ReadLoopAsync()
        {
            var reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(leaveOpen: true));
            var framer = new JsonObjectFramer(64 * 1024);
            try
            {
                while (true)
                {
                    var read = await reader.ReadAsync();
                    var buffer = read.Buffer;
                    while (framer.TryRead(ref buffer, out var json) == FrameStatus.Object)
                    {
                        _objects.Writer.TryWrite(JsonDocument.Parse(json.ToArray()).RootElement.Clone());
                    }

                    reader.AdvanceTo(buffer.Start, buffer.End);
                    if (read.IsCompleted)
                    {
                        return;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
            {
            }
            finally
            {
                _objects.Writer.TryComplete();
            }
        }

        public void Dispose() => _socket.Dispose();

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private sealed class RunningTcpDevice : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _run;

        public RunningTcpDevice(DeviceSettings settings)
        {
            Device = new TcpSimulatedDevice(settings, new DeviceLog(TextWriter.Null, settings.DeviceId, eachMessage: true));
            _run = Device.RunAsync(_stop.Token);
        }

        public ISimulatedDevice Device { get; }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _run.WaitAsync(Timeout);
            Device.Dispose();
            _stop.Dispose();
        }
    }
}
