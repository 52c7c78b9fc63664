using System.Threading.Channels;
using IotGateway.Observability;

namespace IotGateway.Events;

// Live events for GET /api/events: whoever changes something publishes after its commit, every subscriber whose
// filter matches gets it in its own bounded buffer. Publishing never waits: a subscriber whose buffer is full is
// dropped (its stream ends with the reason), so a slow client cannot slow ingest or commands.
public sealed partial class EventHub(IOptions<EventOptions> options, GatewayMetrics metrics, ILogger<EventHub> logger)
{
    private readonly Lock _sync = new();
    private readonly int _buffer = options.Value.ClientBuffer;

    // Replaced, never changed, under _sync: publishers read it without a lock.
    private volatile EventSubscription[] _subscribers = [];

    public int Count => _subscribers.Length;

    // Publishers ask first and build an event only when someone will read it: with no client this is all ingest pays.
    public bool Wants(string deviceId)
    {
        foreach (var subscriber in _subscribers)
        {
            if (subscriber.Matches(deviceId))
            {
                return true;
            }
        }

        return false;
    }

    public void Publish(ServerEvent e)
    {
        foreach (var subscriber in _subscribers)
        {
            if (e.DeviceId is null || subscriber.Matches(e.DeviceId))
            {
                subscriber.Offer(e);
            }
        }
    }

    // deviceId null: every device. client names the subscriber in log lines (API key name and address).
    public EventSubscription Subscribe(string? deviceId, string client)
    {
        var subscription = new EventSubscription(this, deviceId, client, _buffer);
        lock (_sync)
        {
            _subscribers = [.. _subscribers, subscription];
            metrics.EventClients = _subscribers.Length;
        }

        LogSubscribed(client, deviceId ?? "every device");
        return subscription;
    }

    internal void Remove(EventSubscription subscription)
    {
        lock (_sync)
        {
            if (Array.IndexOf(_subscribers, subscription) < 0)
            {
                return;
            }

            _subscribers = [.. _subscribers.Where(s => s != subscription)];
            metrics.EventClients = _subscribers.Length;
        }
    }

    internal void Dropped(EventSubscription subscription, string reason)
    {
        Remove(subscription);
        metrics.EventClientDropped();
        LogDropped(subscription.Client, reason);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Event stream opened for {Client}: {Filter}")]
    private partial void LogSubscribed(string client, string filter);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Event stream of {Client} dropped: {Reason}")]
    private partial void LogDropped(string client, string reason);
}

// One client's place in the hub: a bounded buffer of events not yet written to it.
public sealed class EventSubscription : IDisposable
{
    private readonly EventHub _hub;
    private readonly Channel<ServerEvent> _events;
    // Never disposed: it has no timer, and a drop may still be cancelling it on the thread pool.
    private readonly CancellationTokenSource _dropped = new();
    private readonly int _capacity;
    private int _state; // 0 open, 1 dropped, 2 disposed

    internal EventSubscription(EventHub hub, string? deviceId, string client, int capacity)
    {
        _hub = hub;
        DeviceId = deviceId;
        Client = client;
        _capacity = capacity;
        _events = Channel.CreateBounded<ServerEvent>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // TryWrite then fails instead of dropping an event silently
            SingleReader = true,
            SingleWriter = false,
        });
    }

    public string? DeviceId { get; }
    public string Client { get; }
    public ChannelReader<ServerEvent> Events => _events.Reader;

    // Set when the hub gave up on this client; the stream then ends with it.
    public string? DropReason { get; private set; }

    // Cancelled when dropped: a write stuck on a client that does not read is abandoned.
    public CancellationToken DroppedToken => _dropped.Token;

    internal bool Matches(string deviceId) => DeviceId is null || string.Equals(DeviceId, deviceId, StringComparison.Ordinal);

    internal void Offer(ServerEvent e)
    {
        if (!_events.Writer.TryWrite(e))
        {
            Drop($"it fell {_capacity} events behind (Events:ClientBuffer): the client reads too slowly");
        }
    }

    public void Drop(string reason)
    {
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
        {
            return;
        }

        DropReason = reason;
        _events.Writer.TryComplete();
        _hub.Dropped(this, reason);
        // On the pool: the publisher (the ingest writer) does not run the cancelled write's callbacks.
        _ = _dropped.CancelAsync();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _state, 2) == 0)
        {
            _events.Writer.TryComplete();
            _hub.Remove(this);
        }
    }
}
