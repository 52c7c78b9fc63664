using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using IotGateway.Commands;
using IotGateway.Devices;
using IotGateway.Ingest;
using IotGateway.Mqtt;
using IotGateway.Observability;
using IotGateway.Protocol;

namespace IotGateway.Tcp;

// One TCP device's connection: reads its JSON objects (back to back or newline-delimited), names the device from
// the first one, hands sign-up, readings and answers to the same ingest as MQTT devices, and writes commands.
// Closing, an error, bad input, or silence past the idle timeout ends it; the device is then signed out, unless
// a newer connection of the same device replaced this one.
public sealed partial class TcpDeviceConnection : IAsyncDisposable
{
    private static readonly TimeSpan SignOutWaitAtShutdown = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RefusalLogInterval = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private readonly TcpOptions _options;
    private readonly int _maxObjectBytes;
    private readonly TcpDevices _devices;
    private readonly IngestQueue _ingest;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _closed = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private Stream? _stream;
    private string _closeReason = "the device closed the connection";
    private DateTimeOffset? _refusalLogged;
    private int _refusalsNotLogged;

    // The last command written, until its answer (or expiry, or cancel) is committed, and when the next may go without
    // it. Only the device's lane touches them, but _answerOverdue, which the answer's watcher sets.
    private CommandCompletion.Registration? _awaitingAnswer;
    private DateTimeOffset _answerDue;
    private bool _answerWatched;
    private bool _answerOverdue;

    public TcpDeviceConnection(Socket socket, TcpOptions options, int maxObjectBytes, TcpDevices devices, IngestQueue ingest,
        GatewayMetrics metrics, TimeProvider time, ILogger logger)
    {
        _socket = socket;
        _options = options;
        _maxObjectBytes = maxObjectBytes;
        _devices = devices;
        _ingest = ingest;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        Remote = socket.RemoteEndPoint?.ToString() ?? "unknown";
    }

    public string Remote { get; }

    // Null until the first message names the device.
    public string? DeviceId { get; private set; }

    public async Task RunAsync(SslServerAuthenticationOptions? tls, CancellationToken stopping)
    {
        using var link = CancellationTokenSource.CreateLinkedTokenSource(stopping, _closed.Token);
        var token = link.Token;
        try
        {
            _stream = await OpenStreamAsync(tls, token);
            await ReadMessagesAsync(_stream, token);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            _closeReason = "the gateway is stopping";
        }
        catch (OperationCanceledException)
        {
            // Closed by Close() or by a timeout; the reason is already set.
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
            _closeReason = $"connection error: {ex.GetBaseException().Message}";
        }
        finally
        {
            await EndAsync(stopping);
        }
    }

    // One command, in one write, before `timeout` passes: a device that does not take it (it never reads its socket)
    // is closed, so it cannot hold the lane or the write. Its answer is awaited before the next (see NextCommand).
    internal async Task WriteCommandAsync(byte[] json, CommandCompletion.Registration answer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var stream = _stream ?? throw new IOException("the connection is not open yet");
        using var writeTimeout = new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, writeTimeout.Token, _closed.Token);
        try
        {
            await _writeLock.WaitAsync(linked.Token);
            try
            {
                await stream.WriteAsync(json, linked.Token);
                await stream.FlushAsync(linked.Token);
            }
            finally
            {
                _writeLock.Release();
            }

            _awaitingAnswer?.Dispose();
            _awaitingAnswer = answer;
            _answerDue = _time.GetUtcNow() + timeout;
            _answerWatched = false;
            Volatile.Write(ref _answerOverdue, false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            answer.Dispose();
            if (writeTimeout.IsCancellationRequested)
            {
                Close($"did not take a command within {timeout.TotalSeconds:0.#} s (Tcp:AnswerTimeoutSeconds): it does not read its connection");
            }

            throw new IOException("the connection closed while a command was written to it");
        }
        catch
        {
            answer.Dispose();
            throw;
        }
    }

    // Whether the next command may be written: yes when the last one was answered (or finished otherwise) or its
    // answer is overdue; no while the device still has time to answer it. Then `ready` runs once, when the answer
    // comes or the time runs out, so the caller need not wait (and hold a publishing slot). If the connection ends
    // first, `ready` does not run: the device's next sign-in runs its lane. Only the device's lane calls this, one call
    // at a time.
    internal NextCommand NextCommand(Action ready)
    {
        if (_awaitingAnswer is not { } previous || previous.Finished.IsCompleted)
        {
            ForgetAwaitedAnswer();
            return Tcp.NextCommand.Go;
        }

        if (Volatile.Read(ref _answerOverdue) || _time.GetUtcNow() >= _answerDue)
        {
            ForgetAwaitedAnswer();
            return Tcp.NextCommand.GoAfterTimeout;
        }

        if (!_answerWatched)
        {
            _answerWatched = true;
            _ = WatchAnswerAsync(previous.Finished, _answerDue - _time.GetUtcNow(), ready);
        }

        return Tcp.NextCommand.Wait;
    }

    private async Task WatchAnswerAsync(Task answered, TimeSpan timeout, Action ready)
    {
        try
        {
            await answered.WaitAsync(timeout, _time, _closed.Token);
        }
        catch (TimeoutException)
        {
            Volatile.Write(ref _answerOverdue, true);
        }
        catch (OperationCanceledException)
        {
            // The connection ended: the device's next connection signs it in, and that runs its lane.
            return;
        }

        ready();
    }

    private void ForgetAwaitedAnswer()
    {
        _awaitingAnswer?.Dispose();
        _awaitingAnswer = null;
    }

    public void Close(string reason)
    {
        _closeReason = reason;
        _closed.Cancel();
    }

    private async Task<Stream> OpenStreamAsync(SslServerAuthenticationOptions? tls, CancellationToken token)
    {
        Stream stream = new NetworkStream(_socket, ownsSocket: false);
        if (tls is null)
        {
            return stream;
        }

        var secure = new SslStream(stream, leaveInnerStreamOpen: false);
        using var handshake = CancellationTokenSource.CreateLinkedTokenSource(token);
        handshake.CancelAfter(TimeSpan.FromSeconds(_options.FirstMessageTimeoutSeconds));
        await secure.AuthenticateAsServerAsync(tls, handshake.Token);
        return secure;
    }

    private async Task ReadMessagesAsync(Stream stream, CancellationToken token)
    {
        var framer = new JsonObjectFramer(Math.Min(_options.MaxFirstMessageBytes, _maxObjectBytes));
        await using var objects = new JsonObjectReader(stream, framer,
            new StreamPipeReaderOptions(bufferSize: 4096, leaveOpen: true, useZeroByteReads: true), _time)
        {
            Deadline = _time.GetUtcNow() + TimeSpan.FromSeconds(_options.FirstMessageTimeoutSeconds),
        };
        while (await objects.ReadAsync(token) is { } json)
        {
            var receivedAt = _time.GetUtcNow();
            if (!await HandleAsync(json, receivedAt, token))
            {
                return;
            }

            framer.MaxObjectBytes = _maxObjectBytes;
            objects.Deadline = receivedAt + TimeSpan.FromSeconds(_options.IdleTimeoutSeconds);
        }

        // Closed needs nothing: the close reason already says the device closed the connection.
        switch (objects.End)
        {
            case JsonObjectStreamEnd.TimedOut:
                _closeReason = DeviceId is null
                    ? $"no device named itself within {_options.FirstMessageTimeoutSeconds:0.#} s"
                    : $"silent for {_options.IdleTimeoutSeconds:0.#} s (Tcp:IdleTimeoutSeconds)";
                break;
            case JsonObjectStreamEnd.Invalid:
                Refuse("bad-tcp-stream", framer.Problem!);
                _closeReason = $"bad input: {framer.Problem}{(DeviceId is null && framer.TooLargeObject ? " (Tcp:MaxFirstMessageBytes)" : "")}";
                break;
        }
    }

    // False when the connection must close.
    private async Task<bool> HandleAsync(ReadOnlySequence<byte> json, DateTimeOffset receivedAt, CancellationToken token)
    {
        if (!TcpDeviceMessage.TryRead(json, out var message, out var problem))
        {
            Refuse("bad-tcp-message", problem);
            if (DeviceId is null)
            {
                _closeReason = $"the first message does not name a device: {problem}";
                return false;
            }

            return true;
        }

        if (DeviceId is null)
        {
            if (DeviceIds.Validate(message.DeviceId) is { } invalid)
            {
                Refuse("bad-device-id", $"device id '{LogText.Printable(message.DeviceId)}': {invalid}");
                _closeReason = "the device id is not usable";
                return false;
            }

            DeviceId = message.DeviceId;
            LogDeviceConnected(DeviceId, Remote);
            var signIn = InboundMessage.FromTcp(TopicKind.Register, DeviceId, "SIGN_IN"u8.ToArray(), receivedAt);
            if (await _devices.SignInAsync(DeviceId, this, signIn, _ingest.Writer, token) is { } replaced)
            {
                replaced.Close("replaced by a new connection of the same device");
            }
        }
        else if (!string.Equals(message.DeviceId, DeviceId, StringComparison.Ordinal))
        {
            Refuse("tcp-device-mismatch", $"connection of '{LogText.Printable(DeviceId)}' sent a message naming '{LogText.Printable(message.DeviceId)}'");
            return true;
        }

        switch (message.Type)
        {
            case TcpMessageType.Data:
                await _ingest.Writer.WriteAsync(InboundMessage.FromTcp(TopicKind.Data, DeviceId, json.ToArray(), receivedAt), token);
                break;
            case TcpMessageType.CommandResponse:
                await _ingest.Writer.WriteAsync(InboundMessage.FromTcp(TopicKind.CommandResponse, DeviceId, json.ToArray(), receivedAt), token);
                break;
        }

        return true;
    }

    private async Task EndAsync(CancellationToken stopping)
    {
        if (DeviceId is { } deviceId)
        {
            LogDeviceDisconnected(deviceId, Remote, _closeReason);
            // A stopping gateway still records that the device is gone (the ingest writer stops after the listener), but
            // does not wait for a stalled writer for ever: the next start signs out the devices it finds left signed in.
            using var giveUp = new CancellationTokenSource();
            using var stoppingRegistration = stopping.Register(() => giveUp.CancelAfter(SignOutWaitAtShutdown));
            try
            {
                await _devices.SignOutAsync(deviceId, this,
                    () => InboundMessage.FromTcp(TopicKind.Register, deviceId, "SIGN_OUT"u8.ToArray(), _time.GetUtcNow()), _ingest.Writer, giveUp.Token);
            }
            catch (OperationCanceledException)
            {
                LogSignOutLeftOver(deviceId);
            }
        }
        else
        {
            LogAnonymousClosed(Remote, _closeReason);
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    // Every refusal is counted; a connection logs at most one a RefusalLogInterval (with how many it did not log), so a
    // device that keeps writing bad objects cannot flood the log.
    private void Refuse(string reason, string detail)
    {
        _metrics.MessageRejected(reason);
        var now = _time.GetUtcNow();
        if (_refusalLogged is { } last && now - last < RefusalLogInterval)
        {
            _refusalsNotLogged++;
            return;
        }

        _refusalLogged = now;
        if (_refusalsNotLogged == 0)
        {
            LogRefused(reason, Remote, LogText.Printable(detail, 300));
        }
        else
        {
            LogRefusedAgain(reason, Remote, LogText.Printable(detail, 300), _refusalsNotLogged);
            _refusalsNotLogged = 0;
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Ends the answer's watcher, if any.
        await _closed.CancelAsync();
        _awaitingAnswer?.Dispose();
        if (_stream is not null)
        {
            await _stream.DisposeAsync();
        }

        _socket.Dispose();
        _closed.Dispose();
        _writeLock.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "TCP device {DeviceId} connected from {Remote}")]
    private partial void LogDeviceConnected(string deviceId, string remote);

    [LoggerMessage(Level = LogLevel.Debug, Message = "TCP device {DeviceId} from {Remote} disconnected: {Reason}")]
    private partial void LogDeviceDisconnected(string deviceId, string remote, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "TCP connection from {Remote} closed before naming a device: {Reason}")]
    private partial void LogAnonymousClosed(string remote, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "TCP device {DeviceId}'s sign-out could not be queued before the gateway stopped; its next start signs it out")]
    private partial void LogSignOutLeftOver(string deviceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "TCP message refused ({Reason}) from {Remote}: {Detail}")]
    private partial void LogRefused(string reason, string remote, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "TCP message refused ({Reason}) from {Remote}: {Detail} ({NotLogged} more refused from this connection since the last line)")]
    private partial void LogRefusedAgain(string reason, string remote, string detail, int notLogged);
}

internal enum NextCommand
{
    // Nothing awaited: write it.
    Go,

    // The last command's answer did not come in time: write the next anyway.
    GoAfterTimeout,

    // The device still has time to answer the last one.
    Wait,
}
