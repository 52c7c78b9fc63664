using System.Buffers;
using System.Net.Sockets;
using IotGateway.Protocol;

namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// Always-online devices speaking the article's plain TCP (tcp/iot-device.js), each its own socket to the gateway's
/// listener: SIGNUP first, then every command answered with PONG in a commandResp at once.
/// </summary>
public sealed class TcpDeviceFleet : BenchFleet
{
    private readonly List<(Socket Socket, Task Reading)> _devices = [];
    private readonly CancellationTokenSource _stop = new();

    /// <summary>Connects and signs up every device, <paramref name="concurrency"/> at a time.</summary>
    public static async Task<TcpDeviceFleet> ConnectAsync(int port, IReadOnlyList<string> deviceIds, int concurrency, CancellationToken cancellationToken)
    {
        var fleet = new TcpDeviceFleet();
        try
        {
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken };
            await Parallel.ForEachAsync(deviceIds, parallel, async (deviceId, ct) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync("127.0.0.1", port, ct);
                    await socket.SendAsync(Encoding.UTF8.GetBytes($$"""{"deviceId":"{{deviceId}}","messageType":"SIGNUP"}"""), ct);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }

                lock (fleet._devices)
                {
                    fleet._devices.Add((socket, fleet.AnswerCommandsAsync(socket, deviceId)));
                }
            });
            return fleet;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var connected = fleet._devices.Count;
            await fleet.DisposeAsync();
            throw new BenchFailure($"Only {connected} of {deviceIds.Count} simulated TCP devices connected and signed up: {e.Message}", e);
        }
    }

    public override async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var (socket, _) in _devices)
        {
            socket.Dispose();
        }

        await Task.WhenAll(_devices.Select(d => d.Reading));
        _devices.Clear();
        _stop.Dispose();
    }

    private async Task AnswerCommandsAsync(Socket socket, string deviceId)
    {
        var framer = new JsonObjectFramer(64 * 1024);
        var buffer = new byte[4096];
        var unread = Array.Empty<byte>();
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    return;
                }

                var sequence = new ReadOnlySequence<byte>([.. unread, .. buffer.AsSpan(0, read)]);
                while (framer.TryRead(ref sequence, out var json) == FrameStatus.Object)
                {
                    CountCommand();
                    var answer = PingResponder.Answer(deviceId, json) ?? throw new InvalidDataException($"not a command: {Encoding.UTF8.GetString(json)}");
                    await socket.SendAsync(answer, _stop.Token);
                }

                unread = sequence.ToArray();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException && _stop.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            CountAnswerFailure($"{deviceId}: {e.Message}");
        }
    }
}
