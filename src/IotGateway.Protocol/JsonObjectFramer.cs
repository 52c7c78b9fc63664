using System.Buffers;
using System.Text.Json;

namespace IotGateway.Protocol;

public enum FrameStatus
{
    // An object was found: the buffer now starts after it.
    Object,

    // The buffer holds no complete object yet (it may hold the start of one): read more and call again.
    NeedMoreData,

    // The stream is not a sequence of JSON objects, or an object is too large or too deep: close the connection.
    Invalid,
}

// Finds the JSON objects in a TCP stream: written back to back with no delimiter (the article's device), or
// separated by whitespace and newlines (NDJSON). An object may arrive split across many reads, or several in one.
// The parser's state is kept between reads, so an object that trickles in byte by byte is parsed once, not again
// from its start at every read.
public sealed class JsonObjectFramer(int maxObjectBytes, int maxDepth = 64)
{
    private JsonReaderState _state = NewState(maxDepth);
    private long _parsed; // bytes of the current object already parsed (0: between objects)

    public string? Problem { get; private set; }

    // The object was refused for its size alone.
    public bool TooLargeObject { get; private set; }

    // May change between objects (a listener allows less before it knows who is talking).
    public int MaxObjectBytes { get; set; } = maxObjectBytes;

    public FrameStatus TryRead(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> json)
    {
        json = default;
        if (_parsed == 0)
        {
            buffer = buffer.Slice(LeadingWhitespace(buffer));
            if (buffer.IsEmpty)
            {
                return FrameStatus.NeedMoreData;
            }

            if (buffer.FirstSpan[0] != (byte)'{')
            {
                return Fail("the stream is not a sequence of JSON objects");
            }
        }

        var reader = new Utf8JsonReader(buffer.Slice(_parsed), isFinalBlock: false, _state);
        try
        {
            while (reader.Read())
            {
                if (reader.CurrentDepth == 0 && reader.TokenType == JsonTokenType.EndObject)
                {
                    var length = _parsed + reader.BytesConsumed;
                    json = buffer.Slice(0, length);
                    buffer = buffer.Slice(length);
                    _parsed = 0;
                    _state = NewState(maxDepth);
                    return length > MaxObjectBytes ? Fail(TooLarge()) : FrameStatus.Object;
                }
            }
        }
        catch (JsonException ex)
        {
            return Fail($"invalid JSON: {ex.Message}");
        }

        _parsed += reader.BytesConsumed;
        _state = reader.CurrentState;
        // What is buffered counts, parsed or not: a never-ending object is refused once it passes the limit.
        return buffer.Length > MaxObjectBytes ? Fail(TooLarge()) : FrameStatus.NeedMoreData;
    }

    private string TooLarge()
    {
        TooLargeObject = true;
        return $"an object is larger than {MaxObjectBytes} bytes";
    }

    private FrameStatus Fail(string problem)
    {
        Problem = problem;
        return FrameStatus.Invalid;
    }

    private static long LeadingWhitespace(ReadOnlySequence<byte> buffer)
    {
        long skipped = 0;
        foreach (var segment in buffer)
        {
            var span = segment.Span;
            var i = span.IndexOfAnyExcept(" \t\r\n"u8);
            if (i >= 0)
            {
                return skipped + i;
            }

            skipped += span.Length;
        }

        return skipped;
    }

    private static JsonReaderState NewState(int maxDepth) =>
        new(new JsonReaderOptions { MaxDepth = maxDepth, CommentHandling = JsonCommentHandling.Disallow });
}
