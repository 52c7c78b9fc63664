namespace IotGateway.Mqtt.Embedded;

// Things to do at a time (a Will whose delay runs out, a session that expires), taken by the broker's timer loop.
// An entry carries the version it was scheduled for; the session tells whether that is still current.
internal sealed class DueQueue
{
    private readonly PriorityQueue<(string ClientId, long Version), DateTimeOffset> _queue = new();
    private readonly Lock _lock = new();

    public void Add(string clientId, long version, DateTimeOffset due)
    {
        lock (_lock)
        {
            _queue.Enqueue((clientId, version), due);
        }
    }

    public List<(string ClientId, long Version)> TakeDue(DateTimeOffset now)
    {
        var due = new List<(string, long)>();
        lock (_lock)
        {
            while (_queue.TryPeek(out var item, out var at) && at <= now)
            {
                _queue.Dequeue();
                due.Add(item);
            }
        }

        return due;
    }
}
