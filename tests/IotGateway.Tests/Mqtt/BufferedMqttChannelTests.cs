using System.Buffers;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using IotGateway.Mqtt;
using MQTTnet.Channel;
using MQTTnet.Exceptions;
using MQTTnet.Implementations;

namespace IotGateway.Tests.Mqtt;

// The channel under MQTTnet's packet reader and writer, over a real loopback TCP connection and MQTTnet's own TCP
// channel: what MQTTnet reads and writes through it must arrive byte for byte, in order, whatever the sizes, and its
// write-behind must neither lose bytes at a clean disconnect, nor grow without bound, nor hide a broken connection.
public sealed class BufferedMqttChannelTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ReadsReturnTheByteStreamWhateverSizesAreAsked()
    {
        await using var pair = await ChannelPair.ConnectAsync();
        var sent = Pattern(300_000);
        var writing = Task.Run(async () =>
        {
            // Uneven chunks so reads meet both buffered and freshly received bytes.
            for (int offset = 0, chunk = 1; offset < sent.Length; offset += chunk, chunk = (chunk * 7 % 5_000) + 1)
            {
                await pair.Peer.SendAsync(sent.AsMemory(offset, Math.Min(chunk, sent.Length - offset)), SocketFlags.None);
            }
        });

        // MQTTnet's sizes (1 and 2 header bytes, small and 4 KB body chunks) and one larger than the channel's buffer.
        int[] sizes = [2, 1, 150, 4096, BufferedMqttChannel.ReadBufferBytes + 1000, 7];
        var received = new byte[sent.Length];
        for (int offset = 0, i = 0; offset < received.Length; i++)
        {
            var read = await pair.Channel.ReadAsync(received, offset, Math.Min(sizes[i % sizes.Length], received.Length - offset), CancellationToken.None)
                .WaitAsync(Timeout);
            Assert.True(read > 0, $"the connection closed after {offset} bytes");
            offset += read;
        }

        await writing;
        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task WritesArriveWholeAndInOrder()
    {
        await using var pair = await ChannelPair.ConnectAsync();
        var expected = new MemoryStream();
        for (var i = 0; i < 20_000; i++)
        {
            var packet = Pattern(2 + (i * 13 % 300), seed: i);
            expected.Write(packet);
            if (i % 3 == 0)
            {
                // A packet with a payload comes in two writes: header, then the rest.
                await pair.Channel.WriteAsync(new ReadOnlySequence<byte>(packet, 0, 2), isEndOfPacket: false, CancellationToken.None);
                await pair.Channel.WriteAsync(new ReadOnlySequence<byte>(packet, 2, packet.Length - 2), isEndOfPacket: true, CancellationToken.None);
            }
            else
            {
                await pair.Channel.WriteAsync(new ReadOnlySequence<byte>(packet), isEndOfPacket: true, CancellationToken.None);
            }
        }

        Assert.Equal(expected.ToArray(), await pair.ReceiveAtPeerAsync((int)expected.Length));
    }

    // A lone packet (a command, its PUBREL) must not wait for anything: it is handed to the socket before the
    // write returns, as MQTTnet's own channel does.
    [Fact]
    public async Task ALoneWriteIsSentBeforeItReturns()
    {
        await using var pair = await ChannelPair.ConnectAsync();
        var packet = Pattern(40);
        await pair.Channel.WriteAsync(new ReadOnlySequence<byte>(packet), isEndOfPacket: true, CancellationToken.None);
        Assert.Equal(1, pair.SocketWrites);
        Assert.Equal(packet, await pair.ReceiveAtPeerAsync(packet.Length));
    }

    // What the ingest writer does with a committed batch's acknowledgements: held, they leave in one send.
    [Fact]
    public async Task HeldWritesLeaveTogetherWhenTheHoldEnds()
    {
        await using var pair = await ChannelPair.ConnectAsync();
        byte[] expected;
        using (pair.Channel.HoldWrites())
        {
            expected = await pair.WriteAcksAsync(500);
            Assert.Equal(0, pair.SocketWrites);
        }

        Assert.Equal(expected, await pair.ReceiveAtPeerAsync(expected.Length));
        Assert.Equal(1, pair.SocketWrites);
    }

    // MQTTnet disconnects (a clean stop) while writes wait for a slow socket: they go out before the socket closes.
    [Fact]
    public async Task DisconnectSendsWhatTheSocketHasNotTakenYet()
    {
        // Small socket buffers, so that most of the 2 MB is still in the channel's queue when MQTTnet disconnects.
        await using var pair = await ChannelPair.ConnectAsync(socketBufferBytes: 4096);
        var sent = Pattern(2_000_000);
        for (var offset = 0; offset < sent.Length; offset += 1000)
        {
            await pair.Channel.WriteAsync(new ReadOnlySequence<byte>(sent, offset, 1000), isEndOfPacket: true, CancellationToken.None);
        }

        var disconnecting = pair.Channel.DisconnectAsync(CancellationToken.None);
        Assert.Equal(sent, await pair.ReceiveAtPeerAsync(sent.Length));
        await disconnecting.WaitAsync(Timeout);
        await pair.AssertClosedAsync();
    }

    // ... and while writes are held (the ingest writer in the middle of a batch's acknowledgements).
    [Fact]
    public async Task DisconnectSendsHeldWrites()
    {
        await using var pair = await ChannelPair.ConnectAsync();
        byte[] expected;
        using (pair.Channel.HoldWrites())
        {
            expected = await pair.WriteAcksAsync(100);
            await pair.Channel.DisconnectAsync(CancellationToken.None).WaitAsync(Timeout);
        }

        Assert.Equal(expected, await pair.ReceiveAtPeerAsync(expected.Length));
        await pair.AssertClosedAsync();
    }

    [Fact]
    public async Task WritesWaitOnceTheQueueIsFullAndHonourCancellation()
    {
        await using var pair = await ChannelPair.ConnectAsync();
        // The peer reads nothing: the kernel's socket buffers fill, then the channel's queue, then writes must wait.
        var packet = new byte[16 * 1024];
        using var cancel = new CancellationTokenSource();
        Task? waiting = null;
        long written = 0;
        while (written < 256L * 1024 * 1024)
        {
            var write = pair.Channel.WriteAsync(new ReadOnlySequence<byte>(packet), isEndOfPacket: true, cancel.Token);
            if (!write.IsCompleted)
            {
                waiting = write;
                break;
            }

            await write;
            written += packet.Length;
        }

        Assert.True(waiting is not null, $"{written / (1024 * 1024)} MB were queued and no write waited: the queue has no bound");
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting!.WaitAsync(Timeout));
    }

    [Fact]
    public async Task AFailedSendFailsTheNextWriteAndClosesTheReads()
    {
        await using var pair = await ChannelPair.ConnectAsync();
        pair.ResetByPeer();

        var packet = Pattern(1000);
        await Eventually.UntilAsync(async () =>
        {
            try
            {
                await pair.Channel.WriteAsync(new ReadOnlySequence<byte>(packet), isEndOfPacket: true, CancellationToken.None);
                return false;
            }
            catch (MqttCommunicationException)
            {
                return true;
            }
        }, Timeout, "a write fails after the peer reset the connection");

        // MQTTnet's receive loop ends on a closed read (0) or an error; either way it reports the disconnect.
        var read = await Record.ExceptionAsync(async () =>
            Assert.Equal(0, await pair.Channel.ReadAsync(new byte[16], 0, 16, CancellationToken.None).WaitAsync(Timeout)));
        Assert.True(read is null or MqttCommunicationException or SocketException or IOException, $"the read ended with {read}");
    }

    private static byte[] Pattern(int length, int seed = 0)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    // The gateway's side (BufferedMqttChannel over MQTTnet's TCP channel) and a raw socket as the broker's side.
    private sealed class ChannelPair : IAsyncDisposable
    {
        private readonly CountingChannel _counter;

        private ChannelPair(CountingChannel counter, Socket peer)
        {
            _counter = counter;
            Channel = new BufferedMqttChannel(counter);
            Peer = peer;
        }

        public BufferedMqttChannel Channel { get; }
        public Socket Peer { get; }

        // Writes that reached MQTTnet's TCP channel, i.e. socket sends.
        public int SocketWrites => _counter.Writes;

        public static async Task<ChannelPair> ConnectAsync(int? socketBufferBytes = null)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            if (socketBufferBytes is { } size)
            {
                listener.Server.ReceiveBufferSize = size; // inherited by the accepted socket
            }

            listener.Start();
            var client = new TcpClient();
            if (socketBufferBytes is { } sendSize)
            {
                client.Client.SendBufferSize = sendSize;
            }

            var accepting = listener.AcceptSocketAsync();
            await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
            var peer = await accepting;
            var tcp = new MqttTcpChannel(client.GetStream(), client.Client.LocalEndPoint!, client.Client.RemoteEndPoint!, null!);
            return new ChannelPair(new CountingChannel(tcp), peer);
        }

        public async Task<byte[]> ReceiveAtPeerAsync(int length)
        {
            var received = new byte[length];
            for (var offset = 0; offset < length;)
            {
                var read = await Peer.ReceiveAsync(received.AsMemory(offset), SocketFlags.None).AsTask().WaitAsync(Timeout);
                Assert.True(read > 0, $"the channel closed the connection after {offset} of {length} bytes");
                offset += read;
            }

            return received;
        }

        // Four-byte packets (PUBACK-sized) written one by one; returns the bytes the peer must receive.
        public async Task<byte[]> WriteAcksAsync(int count)
        {
            var written = new MemoryStream();
            for (var i = 0; i < count; i++)
            {
                var ack = Pattern(4, seed: i);
                written.Write(ack);
                await Channel.WriteAsync(new ReadOnlySequence<byte>(ack), isEndOfPacket: true, CancellationToken.None);
            }

            return written.ToArray();
        }

        // The channel closed the connection: the peer reads its end.
        public async Task AssertClosedAsync() =>
            Assert.Equal(0, await Peer.ReceiveAsync(new byte[1], SocketFlags.None).WaitAsync(Timeout));

        // Closing with a zero linger sends RST: the gateway's next sends fail.
        public void ResetByPeer()
        {
            Peer.LingerState = new LingerOption(true, 0);
            Peer.Close();
        }

        public ValueTask DisposeAsync()
        {
            Channel.Dispose();
            Peer.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    // MQTTnet's TCP channel, counting the writes that reach it.
    private sealed class CountingChannel(IMqttChannel inner) : IMqttChannel
    {
        private int _writes;

        public int Writes => Volatile.Read(ref _writes);
        public X509Certificate2 ClientCertificate => inner.ClientCertificate;
        public EndPoint RemoteEndPoint => inner.RemoteEndPoint;
        public EndPoint LocalEndPoint => inner.LocalEndPoint;
        public bool IsSecureConnection => inner.IsSecureConnection;

        public Task ConnectAsync(CancellationToken cancellationToken) => inner.ConnectAsync(cancellationToken);
        public Task DisconnectAsync(CancellationToken cancellationToken) => inner.DisconnectAsync(cancellationToken);
        public Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

        public Task WriteAsync(ReadOnlySequence<byte> buffer, bool isEndOfPacket, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _writes);
            return inner.WriteAsync(buffer, isEndOfPacket, cancellationToken);
        }

        public void Dispose() => inner.Dispose();
    }
}
