using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.Extensions.Time.Testing;

namespace IotGateway.Tests.Protocol;

// The read loop around the framer that the gateway's TCP connections and the simulated TCP device share.
public sealed class JsonObjectReaderTests
{
    private const string Signup = """{"deviceId":"tcp-1","messageType":"SIGNUP"}""";
    private const string Data = """{"deviceId":"tcp-1","messageType":"DATA","temp":23.6}""";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ObjectsComeOneAtATimeWhateverTheWritesAndTheEndIsClosedWhenThePeerCloses()
    {
        var peer = new Pipe();
        await using var objects = Reader(peer, new JsonObjectFramer(1024));

        await WriteAsync(peer, Signup + Data[..10]);
        Assert.Equal(Signup, await NextAsync(objects));
        var data = NextAsync(objects);
        await WriteAsync(peer, Data[10..] + Signup);
        Assert.Equal(Data, await data);
        Assert.Equal(Signup, await NextAsync(objects));

        await WriteAsync(peer, """{"unfinished":""");
        await peer.Writer.CompleteAsync();
        Assert.Null(await objects.ReadAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        Assert.Equal(JsonObjectStreamEnd.Closed, objects.End);
    }

    [Fact]
    public async Task WhatTheFramerRefusesEndsTheStreamAsInvalid()
    {
        var peer = new Pipe();
        var framer = new JsonObjectFramer(1024);
        await using var objects = Reader(peer, framer);

        await WriteAsync(peer, Signup + "hello");
        Assert.Equal(Signup, await NextAsync(objects));
        Assert.Null(await objects.ReadAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        Assert.Equal(JsonObjectStreamEnd.Invalid, objects.End);
        Assert.NotNull(framer.Problem);
    }

    // The deadline bounds the wait for the stream, not the objects already received: those still come after it.
    [Fact]
    public async Task SilenceUntilTheDeadlineEndsTheStreamAsTimedOut()
    {
        var time = new FakeTimeProvider();
        var peer = new Pipe();
        await using var objects = Reader(peer, new JsonObjectFramer(1024), time);
        objects.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(5);

        await WriteAsync(peer, Signup + Data);
        Assert.Equal(Signup, await NextAsync(objects));
        time.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(Data, await NextAsync(objects));
        Assert.Null(await objects.ReadAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        Assert.Equal(JsonObjectStreamEnd.TimedOut, objects.End);

        await using var waiting = Reader(new Pipe(), new JsonObjectFramer(1024), time);
        waiting.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(5);
        var read = waiting.ReadAsync(CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.False(read.IsCompleted, "the read waits until the deadline");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(await read.WaitAsync(Timeout));
        Assert.Equal(JsonObjectStreamEnd.TimedOut, waiting.End);
    }

    [Fact]
    public async Task ACancelledReadThrowsRatherThanTimingOut()
    {
        var time = new FakeTimeProvider();
        await using var objects = Reader(new Pipe(), new JsonObjectFramer(1024), time);
        objects.Deadline = time.GetUtcNow() + TimeSpan.FromSeconds(5);
        using var cancel = new CancellationTokenSource();

        var read = objects.ReadAsync(cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.WaitAsync(Timeout));
        Assert.Equal(JsonObjectStreamEnd.None, objects.End);
    }

    private static JsonObjectReader Reader(Pipe peer, JsonObjectFramer framer, TimeProvider? time = null) =>
        new(peer.Reader.AsStream(), framer, new StreamPipeReaderOptions(leaveOpen: true), time);

    private static async Task WriteAsync(Pipe peer, string text) => await peer.Writer.WriteAsync(Encoding.UTF8.GetBytes(text));

    private static async Task<string?> NextAsync(JsonObjectReader objects) =>
        await objects.ReadAsync(CancellationToken.None).AsTask().WaitAsync(Timeout) is { } json ? Encoding.UTF8.GetString(json.ToArray()) : null;
}
