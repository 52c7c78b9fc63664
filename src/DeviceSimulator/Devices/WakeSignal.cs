namespace DeviceSimulator.Devices;

[Flags]
internal enum WakeReasons
{
    None = 0,
    RebootRequested = 1,
    ConnectionLost = 2,
    IntervalChanged = 4,
}

// Lets the command handler and the connection's events cut a device's wait short, without a timer or thread
// of its own: the device waits for its next deadline or for a reason, whichever comes first.
internal sealed class WakeSignal
{
    private TaskCompletionSource _raised = NewSource();
    private int _reasons;

    public void Raise(WakeReasons reasons)
    {
        Interlocked.Or(ref _reasons, (int)reasons);
        Volatile.Read(ref _raised).TrySetResult();
    }

    public void Clear(WakeReasons reasons) => Interlocked.And(ref _reasons, ~(int)reasons);

    // The reasons raised since the last call, or None once the deadline has passed.
    public async Task<WakeReasons> WaitUntilAsync(DateTimeOffset deadline, TimeProvider time, CancellationToken cancellationToken)
    {
        while (true)
        {
            var delay = deadline - time.GetUtcNow();
            if (Volatile.Read(ref _reasons) == 0 && delay > TimeSpan.Zero)
            {
                using var stopDelay = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                await Task.WhenAny(Task.Delay(delay, time, stopDelay.Token), Volatile.Read(ref _raised).Task).ConfigureAwait(false);
                stopDelay.Cancel();
                cancellationToken.ThrowIfCancellationRequested();
            }

            // Replace the completed source before taking the reasons: a reason raised in between is either taken
            // now or still set for the next wait. At worst the next wait wakes once for nothing, hence the loop.
            if (Volatile.Read(ref _raised).Task.IsCompleted)
            {
                Volatile.Write(ref _raised, NewSource());
            }

            var reasons = (WakeReasons)Interlocked.Exchange(ref _reasons, 0);
            if (reasons != WakeReasons.None || time.GetUtcNow() >= deadline)
            {
                return reasons;
            }
        }
    }

    private static TaskCompletionSource NewSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
