namespace IotGateway.Data;

// Signals between the gateway instances that share a database, sent after a commit: the database stays the truth,
// a signal only says "read it again now". On SQLite there is one instance and they stay in the process
// (InProcessSignals); on PostgreSQL they travel as NOTIFY (PostgresSignals).
public interface IClusterSignals
{
    // Commands finished (answered, expired, cancelled): waiters anywhere read them again.
    void CommandsFinished(IReadOnlyCollection<Guid> ids);

    // Commands were queued for devices whose lanes the owner holds: it publishes them.
    void CommandsQueued(string owner, IReadOnlyCollection<string> deviceIds);

    // A small JSON event (at most MaxEventBytes of UTF-8) for every instance's live subscribers, this one included.
    void PublishEvent(string json);

    event Action<IReadOnlyList<Guid>>? FinishedElsewhere;

    // Devices whose commands this instance (the owner named when queueing) should publish.
    event Action<string, IReadOnlyList<string>>? QueuedForOwner;

    event Action<string>? EventReceived;

    // The signals may have been missed (the listening connection was lost and is back): read the database again.
    event Action? Resynchronise;
}

public static class ClusterSignalLimits
{
    // PostgreSQL's NOTIFY payload limit is 8000 bytes; larger events carry a reference instead.
    public const int MaxEventBytes = 7900;
}

public sealed class InProcessSignals : IClusterSignals
{
    public void CommandsFinished(IReadOnlyCollection<Guid> ids)
    {
    }

    public void CommandsQueued(string owner, IReadOnlyCollection<string> deviceIds) => QueuedForOwner?.Invoke(owner, [.. deviceIds]);

    public void PublishEvent(string json) => EventReceived?.Invoke(json);

    public event Action<IReadOnlyList<Guid>>? FinishedElsewhere
    {
        add { }
        remove { }
    }

    public event Action<string, IReadOnlyList<string>>? QueuedForOwner;

    public event Action<string>? EventReceived;

    public event Action? Resynchronise
    {
        add { }
        remove { }
    }
}
