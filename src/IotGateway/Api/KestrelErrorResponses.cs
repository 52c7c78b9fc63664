using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace IotGateway.Api;

// Kestrel answers a request it cannot parse (a header block over its limit: 431; a malformed request line or an
// invalid character in the path: 400; a request line too long: 414) by itself, before any middleware runs, with an
// empty body — and it offers no hook to change that. So on HTTP/1.x connections the bytes it writes pass through
// here: a response that is a 4xx with "Content-Length: 0" and "Connection: close" (the application always writes
// problem details with a body) is given a problem-details body. Everything else passes unchanged.
public static class KestrelErrorResponses
{
    public static void UseProblemDetailsForKestrelErrors(this KestrelServerOptions kestrel) =>
        kestrel.ConfigureEndpointDefaults(listen => listen.Use(next => async connection =>
        {
            var transport = connection.Transport;
            connection.Transport = new RewritingPipe(transport);
            try
            {
                await next(connection);
            }
            finally
            {
                connection.Transport = transport;
            }
        }));

    private static readonly JsonSerializerOptions BodyOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    // Null when the bytes are not one of Kestrel's empty error responses.
    internal static byte[]? Rewrite(ReadOnlySpan<byte> response)
    {
        var end = response.IndexOf("\r\n\r\n"u8);
        if (end < 0 || end + 4 != response.Length || !response.StartsWith("HTTP/1."u8) || response.Length < 13 || response[9] != (byte)'4')
        {
            return null;
        }

        var head = Encoding.ASCII.GetString(response[..end]);
        var lines = head.Split("\r\n");
        if (!lines.Skip(1).Any(l => l.Equals("Content-Length: 0", StringComparison.OrdinalIgnoreCase))
            || !lines.Skip(1).Any(l => l.Equals("Connection: close", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        var statusLine = lines[0];
        var status = int.Parse(statusLine.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture);
        var title = statusLine.Length > 13 ? statusLine[13..] : "Bad Request";
        var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["type"] = $"https://www.rfc-editor.org/rfc/rfc9110#status.{status}",
            ["title"] = title,
            ["status"] = status,
            ["detail"] = Detail(status),
        }, BodyOptions);
        var rewritten = new StringBuilder(statusLine).Append("\r\n");
        foreach (var line in lines.Skip(1))
        {
            rewritten.Append(line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase) ? $"Content-Length: {body.Length}" : line).Append("\r\n");
        }

        rewritten.Append("Content-Type: application/problem+json\r\n\r\n");
        return [.. Encoding.ASCII.GetBytes(rewritten.ToString()), .. body];
    }

    private static string Detail(int status) => status switch
    {
        431 => "The request's headers are larger than the server accepts.",
        414 => "The request line (method and path) is longer than the server accepts.",
        _ => "The server could not read the request: its request line, a header or the path is malformed.",
    };

    private sealed class RewritingPipe(IDuplexPipe inner) : IDuplexPipe
    {
        public PipeReader Input => inner.Input;

        public PipeWriter Output { get; } = new RewritingWriter(inner.Output);
    }

    // Collects what is written until a flush; a flushed block that is one of Kestrel's empty error responses leaves
    // rewritten. Responses are small, and the copy costs less than the request around it.
    private sealed class RewritingWriter(PipeWriter inner) : PipeWriter
    {
        private readonly ArrayBufferWriter<byte> _pending = new(4096);

        // Kestrel reads these of its transport (System.Text.Json asks them while it serializes a response).
        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => _pending.WrittenCount + (inner.CanGetUnflushedBytes ? inner.UnflushedBytes : 0);

        public override void Advance(int bytes) => _pending.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => _pending.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => _pending.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            MovePending();
            inner.Complete(exception);
        }

        public override async ValueTask CompleteAsync(Exception? exception = null)
        {
            MovePending();
            await inner.CompleteAsync(exception);
        }

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            MovePending();
            return inner.FlushAsync(cancellationToken);
        }

        private void MovePending()
        {
            if (_pending.WrittenCount == 0)
            {
                return;
            }

            var written = _pending.WrittenSpan;
            inner.Write(written.Length < 1024 && Rewrite(written) is { } rewritten ? rewritten : written);
            _pending.ResetWrittenCount();
        }
    }
}
