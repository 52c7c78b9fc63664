using System.Threading.Channels;

namespace IotGateway.Ingest;

// The bounded hand-off between the MQTT handler and the one database writer. When it is full the handler
// waits, acks stop, and the broker holds the rest: memory stays bounded by capacity + Receive Maximum.
public sealed class IngestQueue(IOptions<IngestOptions> options)
{
    private readonly Channel<InboundMessage> _channel = Channel.CreateBounded<InboundMessage>(
        new BoundedChannelOptions(options.Value.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });

    public ChannelWriter<InboundMessage> Writer => _channel.Writer;
    public ChannelReader<InboundMessage> Reader => _channel.Reader;
    public int Count => _channel.Reader.Count;
}
