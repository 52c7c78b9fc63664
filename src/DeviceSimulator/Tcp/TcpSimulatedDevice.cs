using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeviceSimulator.Commands;
using DeviceSimulator.Devices;
using DeviceSimulator.Mqtt;
using DeviceSimulator.Telemetry;
using IotGateway.Protocol;

namespace DeviceSimulator.Tcp;

// The article's TCP device (tcp/iot-device.js): connects to the server, writes {"deviceId","messageType":"SIGNUP"},
// then a DATA reading every interval, and answers each command it reads with the article's commandResp. Unlike the
// article's device it reads commands with a framer (two commands in one read do not break it), reconnects when the
// connection drops, and executes a redelivered uuid only once. Closing the connection is how it signs out.
internal sealed class TcpSimulatedDevice : ISimulatedDevice, ICommandTarget
{
    private const int MaxCommandBytes = 1024 * 1024;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RebootPause = TimeSpan.FromSeconds(1);

    private readonly DeviceSettings _settings;
    private readonly DeviceLog _log;
    private readonly SemaphoreSlim _connectSlots;
    private readonly TimeProvider _time;
    private readonly Sensors _sensors;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CommandRunner _runner;
    private readonly WakeSignal _wake = new();

    private long _intervalTicks;
    private long _readingsSent;
    private long _commandsAnswered;
    private long _connectFailures;
    private volatile bool _signedIn;
    private volatile Stream? _stream;

    public TcpSimulatedDevice(DeviceSettings settings, DeviceLog? log = null, SemaphoreSlim? connectSlots = null, TimeProvider? time = null)
    {
        _settings = settings.TcpServer is not null ? settings : throw new ArgumentException("a TCP device needs a server address", nameof(settings));
        _log = log ?? new DeviceLog(Console.Out, null, settings.LogEachMessage);
        _runner = new CommandRunner(settings.DeviceId, this, _log);
        _connectSlots = connectSlots ?? new SemaphoreSlim(1, 1);
        _time = time ?? TimeProvider.System;
        _sensors = new Sensors(settings.RandomSeed is { } seed ? new Random(seed) : new Random());
        _intervalTicks = settings.Interval.Ticks;
    }

    public DeviceSettings Settings => _settings;
    public string DeviceId => _settings.DeviceId;
    public TimeSpan Interval => TimeSpan.FromTicks(Interlocked.Read(ref _intervalTicks));
    public bool IsSignedIn => _signedIn;
    public bool IsConnected => _stream is not null;
    public long ReadingsSent => Interlocked.Read(ref _readingsSent);
    public long CommandsAnswered => Interlocked.Read(ref _commandsAnswered);
    public long ConnectFailures => Interlocked.Read(ref _connectFailures);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var server = _settings.TcpServer!;
        _log.Step($"WILL CONNECT TO {server.Host}:{server.Port}");
        var firstReading = _settings.FirstWindowDelay ?? Interval;
        for (var failures = 0; !cancellationToken.IsCancellationRequested;)
        {
            var stream = await TryConnectAsync(cancellationToken).ConfigureAwait(false);
            if (stream is null)
            {
                Interlocked.Increment(ref _connectFailures);
                await Pause(ReconnectDelay.After(failures++), cancellationToken).ConfigureAwait(false);
                continue;
            }

            failures = 0;
            var reboot = false;
            await using (stream.ConfigureAwait(false))
            {
                try
                {
                    reboot = await RunConnectionAsync(stream, firstReading, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    _log.Step($"ERROR WITH CONNECTION: {ex.GetBaseException().Message}");
                }
                catch (Exception) when (cancellationToken.IsCancellationRequested)
                {
                    // Stopped: closing the connection below is how a TCP device signs out.
                }
                finally
                {
                    _stream = null;
                    _signedIn = false;
                }
            }

            _log.Step("CONNECTION CLOSED");
            firstReading = Interval;
            await Pause(reboot ? RebootPause : ReconnectDelay.After(0), cancellationToken).ConfigureAwait(false);
        }
    }

    // Returns true when the connection ended because the device rebooted.
    private async Task<bool> RunConnectionAsync(Stream stream, TimeSpan firstReading, CancellationToken cancellationToken)
    {
        _log.Step("CONNECTED TO SERVER");
        _stream = stream;
        await WriteAsync(stream, JsonSerializer.SerializeToUtf8Bytes(new { deviceId = DeviceId, messageType = "SIGNUP" }), cancellationToken).ConfigureAwait(false);
        _signedIn = true;

        using var connection = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var reading = ReadCommandsAsync(stream, connection.Token);
        var nextReading = _time.GetUtcNow() + firstReading;
        try
        {
            while (!reading.IsCompleted)
            {
                var wake = await _wake.WaitUntilAsync(nextReading, _time, cancellationToken).ConfigureAwait(false);
                if (reading.IsCompleted)
                {
                    break;
                }

                if (wake == WakeReasons.None)
                {
                    await SendReadingAsync(stream, cancellationToken).ConfigureAwait(false);
                    nextReading = _time.GetUtcNow() + Interval;
                }
                else if (wake.HasFlag(WakeReasons.IntervalChanged))
                {
                    nextReading = _time.GetUtcNow() + Interval;
                }
            }
        }
        finally
        {
            await connection.CancelAsync().ConfigureAwait(false);
        }

        return await reading.ConfigureAwait(false);
    }

    private async Task SendReadingAsync(Stream stream, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var payload = new TelemetryMessage(DeviceId, Guid.CreateVersion7(now).ToString(), now, _sensors.Read()).ToJson();
        if (_log.EachMessage)
        {
            _log.Step($"SENDING DATA: {Encoding.UTF8.GetString(payload)}");
        }

        await WriteAsync(stream, payload, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref _readingsSent);
    }

    // Ends (true) after answering REBOOT, or (false) when the server closes the connection or sends what is not JSON.
    private async Task<bool> ReadCommandsAsync(Stream stream, CancellationToken cancellationToken)
    {
        var framer = new JsonObjectFramer(MaxCommandBytes);
        var commands = new JsonObjectReader(stream, framer, new StreamPipeReaderOptions(leaveOpen: true));
        await using (commands.ConfigureAwait(false))
        {
            try
            {
                while (await commands.ReadAsync(cancellationToken).ConfigureAwait(false) is { } json)
                {
                    if (await HandleCommandAsync(stream, json, cancellationToken).ConfigureAwait(false))
                    {
                        return true;
                    }
                }

                if (commands.End == JsonObjectStreamEnd.Invalid)
                {
                    _log.Problem($"CLOSING THE CONNECTION: THE SERVER SENT {framer.Problem}");
                }

                return false;
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                return false;
            }
            catch (IOException)
            {
                return false;
            }
            finally
            {
                _wake.Raise(WakeReasons.ConnectionLost);
            }
        }
    }

    // Returns true when the command was REBOOT and the connection must now drop.
    private async Task<bool> HandleCommandAsync(Stream stream, ReadOnlySequence<byte> json, CancellationToken cancellationToken)
    {
        if (!_runner.TryRun(json, out var request, out var outcome))
        {
            return false;
        }

        using (request)
        {
            var response = _runner.Answer(request, outcome);
            await WriteAsync(stream, response, cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _commandsAnswered);
            if (outcome.RebootAfterAnswer)
            {
                _log.Step("REBOOTING: CLOSING THE CONNECTION");
                return true;
            }

            return false;
        }
    }

    private async Task WriteAsync(Stream stream, byte[] message, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // One write per message, as the article's device does.
            await stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task<Stream?> TryConnectAsync(CancellationToken cancellationToken)
    {
        var server = _settings.TcpServer!;
        await _connectSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(ConnectTimeout);
            await socket.ConnectAsync(server.Host, server.Port, timeout.Token).ConfigureAwait(false);
            Stream stream = new NetworkStream(socket, ownsSocket: true);
            if (_settings.TcpTls)
            {
                var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                var options = new SslClientAuthenticationOptions { TargetHost = server.Host };
                if (_settings.AllowUntrustedCertificates)
                {
                    options.RemoteCertificateValidationCallback = (_, _, _, _) => true;
                }

                await tls.AuthenticateAsClientAsync(options, timeout.Token).ConfigureAwait(false);
                stream = tls;
            }

            return stream;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            _log.Step($"COULD NOT CONNECT TO {server.Host}:{server.Port} ({ex.GetBaseException().Message})");
            socket.Dispose();
            return null;
        }
        finally
        {
            _connectSlots.Release();
        }
    }

    private async Task Pause(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void ChangeInterval(TimeSpan interval)
    {
        Interlocked.Exchange(ref _intervalTicks, interval.Ticks);
        _wake.Raise(WakeReasons.IntervalChanged);
    }

    public JsonObject DescribeConfiguration() => new()
    {
        ["deviceId"] = DeviceId,
        ["transport"] = "tcp",
        ["server"] = string.Create(CultureInfo.InvariantCulture, $"{_settings.TcpServer!.Host}:{_settings.TcpServer.Port}"),
        ["tls"] = _settings.TcpTls,
        ["intervalSeconds"] = Interval.TotalSeconds,
    };

    public void Dispose() => _writeLock.Dispose();
}
