namespace IotGateway.Telemetry;

// When the ingest writer last moved: committed a batch, or woke up to take one. Readiness asks whether messages
// are queued while it has not moved for Ingest:StallSeconds (blocked on something that raises no error).
public sealed class IngestProgress(TimeProvider time)
{
    private long _movedAt = time.GetTimestamp();
    private volatile bool _waiting;

    // The queue is empty and the writer waits for messages: it is not stalled however long that lasts.
    public void Waiting()
    {
        Interlocked.Exchange(ref _movedAt, time.GetTimestamp());
        _waiting = true;
    }

    public void Moved()
    {
        Interlocked.Exchange(ref _movedAt, time.GetTimestamp());
        _waiting = false;
    }

    // The writer's loop has ended (a bug, or the host stopping): queued messages will not move.
    public void Stopped() => _waiting = false;

    public TimeSpan? StalledFor(int queued, TimeSpan threshold)
    {
        if (queued == 0 || _waiting)
        {
            return null;
        }

        var still = time.GetElapsedTime(Interlocked.Read(ref _movedAt));
        return still >= threshold ? still : null;
    }
}
