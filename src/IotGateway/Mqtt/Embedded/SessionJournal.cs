namespace IotGateway.Mqtt.Embedded;

// What changed in the sessions since the last write to the database, collected in memory so that nothing on
// MQTTnet's path waits for a disk (write-behind). A message queued and acknowledged between two writes (the usual
// fate of a message to a connected client) is never written at all.
internal sealed class SessionJournal
{
    private readonly Lock _lock = new();
    private long _lastId;
    private Changes _changes = new();

    public long NextDeliveryId() => Interlocked.Increment(ref _lastId);

    public void ContinueAfter(long lastId) => Interlocked.Exchange(ref _lastId, Math.Max(lastId, Interlocked.Read(ref _lastId)));

    public bool IsEmpty
    {
        get
        {
            lock (_lock)
            {
                return _changes.IsEmpty;
            }
        }
    }

    public void Added(string clientId, Delivery delivery)
    {
        lock (_lock)
        {
            _changes.Added[delivery.Id] = (clientId, delivery);
        }
    }

    public void Removed(Delivery delivery)
    {
        lock (_lock)
        {
            if (!_changes.Added.Remove(delivery.Id))
            {
                _changes.Removed.Add(delivery.Id);
            }
        }
    }

    // The session's own row or its subscriptions changed.
    public void Changed(string clientId)
    {
        lock (_lock)
        {
            _changes.Changed.Add(clientId);
        }
    }

    // The session is gone (or starts again clean): every stored row of it goes.
    public void Cleared(string clientId)
    {
        lock (_lock)
        {
            _changes.Clear(clientId);
        }
    }

    // What to write now. A message in flight to a connected client stays behind: it is usually acknowledged before
    // the next write, and then never written (the stop writes it if it is not: its client is away by then).
    public Changes Take()
    {
        lock (_lock)
        {
            var taken = _changes;
            _changes = new Changes();
            foreach (var (id, added) in taken.Added)
            {
                if (added.Delivery.InFlight)
                {
                    _changes.Added[id] = added;
                }
            }

            foreach (var id in _changes.Added.Keys)
            {
                taken.Added.Remove(id);
            }

            return taken;
        }
    }

    // A write failed: its changes come back, older than whatever happened since.
    public void PutBack(Changes failed)
    {
        lock (_lock)
        {
            var newer = _changes;
            foreach (var clientId in newer.Cleared)
            {
                failed.Clear(clientId);
            }

            foreach (var (id, added) in newer.Added)
            {
                failed.Added[id] = added;
            }

            foreach (var id in newer.Removed)
            {
                if (!failed.Added.Remove(id))
                {
                    failed.Removed.Add(id);
                }
            }

            failed.Changed.UnionWith(newer.Changed);
            _changes = failed;
        }
    }

    internal sealed class Changes
    {
        public Dictionary<long, (string ClientId, Delivery Delivery)> Added { get; } = [];
        public HashSet<long> Removed { get; } = [];
        public HashSet<string> Changed { get; } = new(StringComparer.Ordinal);
        public HashSet<string> Cleared { get; } = new(StringComparer.Ordinal);

        public bool IsEmpty => Added.Count == 0 && Removed.Count == 0 && Changed.Count == 0 && Cleared.Count == 0;

        // Each session's changes apart; the first part (no client) holds the removed messages, which the journal
        // does not tie to a session.
        public List<(string? ClientId, Changes Part)> ByClient()
        {
            var parts = new Dictionary<string, Changes>(StringComparer.Ordinal);
            Changes Of(string clientId) => parts.TryGetValue(clientId, out var part) ? part : parts[clientId] = new Changes();
            foreach (var clientId in Cleared)
            {
                Of(clientId).Cleared.Add(clientId);
            }

            foreach (var clientId in Changed)
            {
                Of(clientId).Changed.Add(clientId);
            }

            foreach (var (id, added) in Added)
            {
                Of(added.ClientId).Added[id] = added;
            }

            var removed = new Changes();
            removed.Removed.UnionWith(Removed);
            return [(null, removed), .. parts.Select(p => ((string?)p.Key, p.Value))];
        }

        // Parts of one set of changes (ByClient) together again.
        public static Changes Merge(IEnumerable<Changes> parts)
        {
            var merged = new Changes();
            foreach (var part in parts)
            {
                foreach (var (id, added) in part.Added)
                {
                    merged.Added[id] = added;
                }

                merged.Removed.UnionWith(part.Removed);
                merged.Changed.UnionWith(part.Changed);
                merged.Cleared.UnionWith(part.Cleared);
            }

            return merged;
        }

        public void Clear(string clientId)
        {
            Cleared.Add(clientId);
            Changed.Add(clientId); // written again if the client has a new session by then
            foreach (var id in Added.Where(a => a.Value.ClientId == clientId).Select(a => a.Key).ToList())
            {
                Added.Remove(id);
            }
        }
    }
}
