using System.Buffers;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using MQTTnet;
using MQTTnet.Adapter;
using MQTTnet.Channel;
using MQTTnet.Diagnostics.Logger;
using MQTTnet.Exceptions;
using MQTTnet.Formatter;
using MQTTnet.Implementations;

namespace IotGateway.Mqtt;

/// <summary>
/// Sits between MQTTnet's packet reader/writer and the TCP or WebSocket connection to the broker, so that a backlog
/// costs a few system calls per hundred messages instead of three per message.
/// </summary>
/// <remarks>
/// MQTTnet 5 reads every packet with two or three reads (fixed header, remaining length, body) and sends every
/// packet, each PUBACK included, with its own write; on a socket each is a system call, and Mosquitto wakes up for
/// every PUBACK. Draining 100,000 QoS 1 readings took 200,000 reads and 100,000 sends. Here reads take up to 64 KB
/// at once and MQTTnet's small reads are served from that buffer.
///
/// Writes go into a queue that one flush loop sends. A write normally starts the flush itself, so a lone packet
/// (a command, its PUBREL) leaves at once, on the caller's thread, as it would without this channel. While the
/// flush loop waits for the socket, further writes queue and leave together in its next send. And while the writes
/// are held (<see cref="HoldWrites"/>: the ingest writer holds them over a committed batch's acknowledgements),
/// nothing is sent until the hold ends, and then everything in one send.
///
/// A write therefore completes when its bytes are queued, not necessarily when the socket took them. MQTTnet relies
/// on nothing more: a QoS 1/2 publish completes on the broker's answer, not on the write. A failed send is kept:
/// the write that started it or the next one throws it, and the connection is closed, so MQTTnet's receive loop
/// ends and it reports the disconnect as it would for a failed write. At most <see cref="MaxQueuedBytes"/> wait; a
/// write beyond that waits for the flush loop (and honours MQTTnet's cancellation). <see cref="DisconnectAsync"/>
/// sends what is queued first, so a clean stop's last acknowledgements and its DISCONNECT packet reach the broker.
/// </remarks>
public sealed class BufferedMqttChannel : IMqttChannel
{
    public const int ReadBufferBytes = 64 * 1024;
    public const int MaxQueuedBytes = 1024 * 1024;

    private readonly IMqttChannel _inner;
    private readonly byte[] _readBuffer = new byte[ReadBufferBytes];
    private int _readStart;
    private int _readEnd;

    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _disposed = new();
    private ArrayBufferWriter<byte> _queued = new(4096);
    private ArrayBufferWriter<byte> _sending = new(4096);
    private bool _flushing;
    private int _holds;
    private Exception? _sendFailure;
    private TaskCompletionSource? _sent;

    public BufferedMqttChannel(IMqttChannel inner)
    {
        _inner = inner;
    }

    public X509Certificate2 ClientCertificate => _inner.ClientCertificate;

    public EndPoint RemoteEndPoint => _inner.RemoteEndPoint;

    public EndPoint LocalEndPoint => _inner.LocalEndPoint;

    public bool IsSecureConnection => _inner.IsSecureConnection;

    public Task ConnectAsync(CancellationToken cancellationToken) => _inner.ConnectAsync(cancellationToken);

    public async Task DisconnectAsync(CancellationToken cancellationToken)
    {
        // Whatever is queued goes out before the connection closes: writes waiting for the socket, and held ones
        // (the ingest writer may be in the middle of a batch's acknowledgements).
        bool startFlush;
        lock (_lock)
        {
            startFlush = !_flushing && _sendFailure is null && _queued.WrittenCount > 0;
            _flushing |= startFlush;
        }

        if (startFlush)
        {
            _ = FlushAsync();
        }

        await WaitForFlushAsync(untilAllSent: true, cancellationToken).ConfigureAwait(false);
        await _inner.DisconnectAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Called by one reader at a time (MQTTnet's receive loop).</summary>
    public Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<int>(cancellationToken);
        }

        if (_readStart < _readEnd)
        {
            return Completed(TakeBuffered(buffer, offset, count));
        }

        // A large body goes straight into MQTTnet's array instead of through ours.
        return count >= ReadBufferBytes
            ? _inner.ReadAsync(buffer, offset, count, cancellationToken)
            : FillAndTakeAsync(buffer, offset, count, cancellationToken);
    }

    private async Task<int> FillAndTakeAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        var read = await _inner.ReadAsync(_readBuffer, 0, ReadBufferBytes, cancellationToken).ConfigureAwait(false);
        if (read == 0)
        {
            return 0; // closed
        }

        _readStart = 0;
        _readEnd = read;
        return TakeBuffered(buffer, offset, count);
    }

    // MQTTnet's reads are 1 or 2 bytes (header) and a small body: their completed tasks are shared instead of being
    // allocated three times per message.
    private static readonly Task<int>?[] CompletedReads = new Task<int>?[1024];

    private static Task<int> Completed(int read) =>
        read < CompletedReads.Length ? CompletedReads[read] ??= Task.FromResult(read) : Task.FromResult(read);

    private int TakeBuffered(byte[] buffer, int offset, int count)
    {
        var taken = Math.Min(count, _readEnd - _readStart);
        Buffer.BlockCopy(_readBuffer, _readStart, buffer, offset, taken);
        _readStart += taken;
        return taken;
    }

    /// <summary>MQTTnet writes one packet at a time (under its own lock), in one or two parts.</summary>
    public Task WriteAsync(ReadOnlySequence<byte> buffer, bool isEndOfPacket, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_sendFailure is not null)
            {
                return Task.FromException(new MqttCommunicationException("An earlier send to the broker failed.", _sendFailure));
            }

            foreach (var segment in buffer)
            {
                _queued.Write(segment.Span);
            }

            if (!isEndOfPacket)
            {
                return Task.CompletedTask; // the rest of the packet follows at once
            }

            if (_flushing)
            {
                return _queued.WrittenCount > MaxQueuedBytes
                    ? WaitForFlushAsync(untilAllSent: false, cancellationToken)
                    : Task.CompletedTask;
            }

            if (_holds > 0 && _queued.WrittenCount <= MaxQueuedBytes)
            {
                return Task.CompletedTask; // sent when the hold ends
            }

            _flushing = true;
        }

        var flush = FlushAsync();
        lock (_lock)
        {
            // The flush ran to its end on this thread and failed: this packet's sender hears of it now.
            return flush.IsCompleted && _sendFailure is not null
                ? Task.FromException(new MqttCommunicationException("Sending to the broker failed.", _sendFailure))
                : Task.CompletedTask;
        }
    }

    /// <summary>
    /// Queues the writes made until the returned handle is disposed, then sends them in one go: many small packets
    /// written in a row (a batch's PUBACKs) leave in one system call instead of one each.
    /// </summary>
    public WriteHold HoldWrites()
    {
        lock (_lock)
        {
            _holds++;
        }

        return new WriteHold(this);
    }

    private void ReleaseHold()
    {
        lock (_lock)
        {
            if (--_holds > 0 || _flushing || _queued.WrittenCount == 0)
            {
                return;
            }

            _flushing = true;
        }

        _ = FlushAsync();
    }

    public readonly struct WriteHold(BufferedMqttChannel? channel) : IDisposable
    {
        public void Dispose() => channel?.ReleaseHold();
    }

    private async Task FlushAsync()
    {
        try
        {
            while (true)
            {
                lock (_lock)
                {
                    if (_queued.WrittenCount == 0)
                    {
                        _flushing = false;
                        SignalSent();
                        return;
                    }

                    (_queued, _sending) = (_sending, _queued);
                }

                await _inner.WriteAsync(new ReadOnlySequence<byte>(_sending.WrittenMemory), isEndOfPacket: true, _disposed.Token)
                    .ConfigureAwait(false);
                _sending.ResetWrittenCount();
                lock (_lock)
                {
                    SignalSent();
                }
            }
        }
        catch (Exception ex)
        {
            lock (_lock)
            {
                _sendFailure = ex;
                _flushing = false;
                SignalSent();
            }

            // The connection is broken: closing it ends MQTTnet's receive loop, which reports the disconnect.
            _inner.Dispose();
        }
    }

    // Under _lock.
    private void SignalSent()
    {
        _sent?.TrySetResult();
        _sent = null;
    }

    private async Task WaitForFlushAsync(bool untilAllSent, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task sent;
            lock (_lock)
            {
                if (!_flushing || _sendFailure is not null || (!untilAllSent && _queued.WrittenCount <= MaxQueuedBytes))
                {
                    return;
                }

                sent = (_sent ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }

            await sent.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        _disposed.Cancel();
        _inner.Dispose();
        _disposed.Dispose();
    }
}

/// <summary>MQTTnet's own adapter factory, with <see cref="BufferedMqttChannel"/> around its TCP or WebSocket channel.</summary>
public sealed class BufferedChannelAdapterFactory : IMqttClientAdapterFactory
{
    private BufferedMqttChannel? _latest;

    /// <summary>The channel of the client's latest connection attempt (a client has one connection at a time).</summary>
    public BufferedMqttChannel? Latest => Volatile.Read(ref _latest);

    public IMqttChannelAdapter CreateClientAdapter(MqttClientOptions options, MqttPacketInspector packetInspector, IMqttNetLogger logger)
    {
        IMqttChannel transport = options.ChannelOptions switch
        {
            MqttClientWebSocketOptions webSocket => new MqttWebSocketChannel(webSocket),
            MqttClientTcpOptions => new MqttTcpChannel(options),
            var other => throw new NotSupportedException($"Unknown MQTT channel options: {other?.GetType().Name}."),
        };
        var formatter = new MqttPacketFormatterAdapter(options.ProtocolVersion, new MqttBufferWriter(options.WriterBufferSize, options.WriterBufferSizeMax));
        var channel = new BufferedMqttChannel(transport);
        Volatile.Write(ref _latest, channel);
        return new MqttChannelAdapter(channel, formatter, logger)
        {
            AllowPacketFragmentation = options.AllowPacketFragmentation,
            PacketInspector = packetInspector,
        };
    }
}
