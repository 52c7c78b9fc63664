using System.Buffers;
using System.Text;

namespace IotGateway.Tests.Protocol;

// How the TCP listener cuts a device's byte stream into JSON objects.
public sealed class JsonObjectFramerTests
{
    private const string Signup = """{"deviceId":"tcp-1","messageType":"SIGNUP"}""";
    private const string Data = """{"deviceId":"tcp-1","messageType":"DATA","temp":23.6,"nested":{"a":[1,{"b":"}"}]}}""";
    private const string Answer = """{"deviceId":"tcp-1","messageType":"commandResp","commandResult":"PONG","uuid":"9b2c","command":"PING"}""";

    [Fact]
    public void ObjectsBackToBackAreFoundWhateverTheReadBoundaries()
    {
        var stream = Encoding.UTF8.GetBytes(Signup + Data + Answer);
        for (var cut = 1; cut < stream.Length; cut++)
        {
            var found = Frame([stream[..cut], stream[cut..]], maxObjectBytes: 1024, out var problem);
            Assert.Null(problem);
            Assert.Equal([Signup, Data, Answer], found);
        }
    }

    [Fact]
    public void AnObjectArrivingByteByByteIsFound()
    {
        var stream = Encoding.UTF8.GetBytes(Data + Signup);
        var found = Frame(stream.Select(b => new[] { b }).ToArray(), maxObjectBytes: 1024, out var problem);
        Assert.Null(problem);
        Assert.Equal([Data, Signup], found);
    }

    [Fact]
    public void NewlineDelimitedJsonIsAcceptedToo()
    {
        var stream = Encoding.UTF8.GetBytes($"{Signup}\n{Data}\r\n\r\n  {Answer}\n");
        Assert.Equal([Signup, Data, Answer], Frame([stream], 1024, out var problem));
        Assert.Null(problem);
    }

    [Theory]
    [InlineData("hello")]
    [InlineData("[1,2]")]
    [InlineData("\"a string\"")]
    [InlineData("{\"a\":1} garbage")]
    [InlineData("{\"a\":}")]
    [InlineData("{\"a\":1}]")]
    [InlineData("{'a':1}")]
    [InlineData("{\"a\":1 /* comment */}")]
    public void BytesThatAreNotASequenceOfObjectsAreInvalid(string text)
    {
        Frame([Encoding.UTF8.GetBytes(text)], 1024, out var problem);
        Assert.NotNull(problem);
    }

    [Fact]
    public void AnObjectLargerThanTheLimitIsInvalid()
    {
        var big = $$"""{"blob":"{{new string('x', 2000)}}"}""";
        var found = Frame([Encoding.UTF8.GetBytes(Signup + big)], maxObjectBytes: 1024, out var problem);
        Assert.Equal([Signup], found);
        Assert.Contains("larger than 1024 bytes", problem);
    }

    [Fact]
    public void ANeverEndingObjectIsRefusedOnceItPassesTheLimit()
    {
        var framer = new JsonObjectFramer(maxObjectBytes: 1024);
        var pending = Encoding.UTF8.GetBytes("""{"blob":[""");
        for (var i = 0; i < 1000; i++)
        {
            pending = [.. pending, .. "1,"u8];
            var buffer = new ReadOnlySequence<byte>(pending);
            var status = framer.TryRead(ref buffer, out _);
            if (status == FrameStatus.Invalid)
            {
                Assert.True(pending.Length > 1024, "refused only past the limit");
                Assert.Contains("larger than 1024 bytes", framer.Problem);
                return;
            }

            Assert.Equal(FrameStatus.NeedMoreData, status);
        }

        Assert.Fail("a 2,000-byte unfinished object was still accepted");
    }

    [Fact]
    public void NestingDeeperThanTheLimitIsInvalid()
    {
        var deep = new string('[', 100);
        Frame([Encoding.UTF8.GetBytes($$"""{"a":{{deep}}""")], 4096, out var problem);
        Assert.Contains("depth", problem, StringComparison.OrdinalIgnoreCase);
    }

    // Feeds the chunks the way a PipeReader hands them over: what was not consumed comes back with the new bytes.
    private static List<string> Frame(byte[][] chunks, int maxObjectBytes, out string? problem)
    {
        var framer = new JsonObjectFramer(maxObjectBytes);
        var found = new List<string>();
        var unconsumed = Array.Empty<byte>();
        foreach (var chunk in chunks)
        {
            var buffer = new ReadOnlySequence<byte>([.. unconsumed, .. chunk]);
            while (true)
            {
                var status = framer.TryRead(ref buffer, out var json);
                if (status == FrameStatus.Invalid)
                {
                    problem = framer.Problem;
                    return found;
                }

                if (status == FrameStatus.NeedMoreData)
                {
                    break;
                }

                found.Add(Encoding.UTF8.GetString(json.ToArray()));
            }

            unconsumed = buffer.ToArray();
        }

        problem = null;
        return found;
    }
}
