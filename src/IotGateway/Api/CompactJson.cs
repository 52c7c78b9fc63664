using System.Buffers;

namespace IotGateway.Api;

public static class CompactJson
{
    // The same JSON on one line: whitespace outside strings dropped, every token kept as written (a number such as 1e400
    // keeps its text). Only for valid JSON (JsonText.Repair). NDJSON and Server-Sent Events need one line per value.
    public static void Write(ReadOnlySpan<byte> json, IBufferWriter<byte> output)
    {
        var span = output.GetSpan(json.Length);
        var length = 0;
        var inString = false;
        var escaped = false;
        foreach (var b in json)
        {
            if (inString)
            {
                if (escaped)
                {
                    escaped = false;
                }
                else if (b == (byte)'\\')
                {
                    escaped = true;
                }
                else if (b == (byte)'"')
                {
                    inString = false;
                }
            }
            else if (b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
            {
                continue;
            }
            else if (b == (byte)'"')
            {
                inString = true;
            }

            span[length++] = b;
        }

        output.Advance(length);
    }
}
