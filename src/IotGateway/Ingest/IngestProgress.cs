namespace IotGateway.Ingest;

// When the ingest writer last moved: took a batch, or stored one. Readiness asks whether messages are waiting (queued,
// or in the writer's hand) while it has not moved for Ingest:StallSeconds: blocked on something that raises no error.
public sealed class IngestProgress(TimeProvider time)
{
    private long _movedAt = time.GetTimestamp();
    private int _inHand;
    private volatile bool _waiting;

    // The queue is empty and the writer waits for messages: it is not stalled however long that lasts.
    public void Waiting()
    {
        Touch();
        _waiting = true;
    }

    public void Took(int messages)
    {
        Volatile.Write(ref _inHand, messages);
        Touch();
        _waiting = false;
    }

    // Part or all of the batch in hand is stored (or rejected).
    public void Stored() => Touch();

    public void Done()
    {
        Volatile.Write(ref _inHand, 0);
        Touch();
    }

    // The writer's loop has ended (a bug, or the host stopping): queued messages will not move.
    public void Stopped() => _waiting = false;

    public TimeSpan? StalledFor(int queued, TimeSpan threshold)
    {
        if (queued + Volatile.Read(ref _inHand) == 0 || _waiting)
        {
            return null;
        }

        var still = time.GetElapsedTime(Interlocked.Read(ref _movedAt));
        return still >= threshold ? still : null;
    }

    private void Touch() => Interlocked.Exchange(ref _movedAt, time.GetTimestamp());
}
