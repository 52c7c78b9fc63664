using System.Buffers;
using System.IO.Pipelines;

namespace IotGateway.Protocol;

public enum JsonObjectStreamEnd
{
    // Not ended: the last read returned an object.
    None,

    // The peer closed the stream (the start of an object it left unfinished is dropped).
    Closed,

    // The framer refused the stream (its Problem says why): close the connection.
    Invalid,

    // Nothing arrived before the Deadline.
    TimedOut,
}

// A stream's JSON objects, one at a time, as the JsonObjectFramer finds them: the read loop the gateway's TCP
// listener and the simulated TCP device share. The caller keeps the framer, to change its limit between objects and
// read its Problem.
public sealed class JsonObjectReader(Stream stream, JsonObjectFramer framer, StreamPipeReaderOptions options, TimeProvider? time = null)
    : IAsyncDisposable
{
    private readonly PipeReader _reader = PipeReader.Create(stream, options);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private ReadOnlySequence<byte> _buffer;
    private bool _holdingRead;
    private bool _streamCompleted;

    // When set, a read that has to wait for the stream gives up at this time; objects already received are still
    // returned after it.
    public DateTimeOffset? Deadline { get; set; }

    public JsonObjectStreamEnd End { get; private set; }

    // The next object, valid until the next call; null once the stream has ended (End says how).
    public async ValueTask<ReadOnlySequence<byte>?> ReadAsync(CancellationToken cancellationToken)
    {
        while (End == JsonObjectStreamEnd.None)
        {
            if (!_holdingRead)
            {
                if (await ReadStreamAsync(cancellationToken).ConfigureAwait(false) is not { } read)
                {
                    End = JsonObjectStreamEnd.TimedOut;
                    break;
                }

                _buffer = read.Buffer;
                _streamCompleted = read.IsCompleted;
                _holdingRead = true;
            }

            switch (framer.TryRead(ref _buffer, out var json))
            {
                case FrameStatus.Object:
                    return json;
                case FrameStatus.Invalid:
                    End = JsonObjectStreamEnd.Invalid;
                    break;
                default:
                    _reader.AdvanceTo(_buffer.Start, _buffer.End);
                    _holdingRead = false;
                    if (_streamCompleted)
                    {
                        End = JsonObjectStreamEnd.Closed;
                    }

                    break;
            }
        }

        return null;
    }

    // Null when the deadline passed first.
    private async ValueTask<ReadResult?> ReadStreamAsync(CancellationToken cancellationToken)
    {
        if (Deadline is not { } deadline)
        {
            return await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }

        var left = deadline - _time.GetUtcNow();
        using var timer = new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
        try
        {
            return await _reader.ReadAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    public ValueTask DisposeAsync() => _reader.CompleteAsync();
}
