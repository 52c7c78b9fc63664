
namespace IotGateway.Commands;

// Lets a caller wait for a command to finish (GET /api/commands/{id}?waitSeconds=…) instead of polling.
// Whatever finishes a command (an answer, the expiry sweep, a cancel) calls Finished after its commit, on whichever
// instance it happens (through CommandTransitions): the other instances hear of it through the cluster signals.
// Waiters then read the command again, and the dispatcher drops it from the lane that holds it. Only signals live
// here: the database stays the truth.
public sealed class CommandCompletion
{
    // Commands finished here or on another instance; raised before waiters wake.
    public event Action<IReadOnlyCollection<Guid>>? CommandsFinished;

    private readonly Lock _sync = new();
    private readonly Dictionary<Guid, Waiter> _waiting = [];
    private readonly IClusterSignals _signals;

    public CommandCompletion(IClusterSignals signals)
    {
        _signals = signals;
        signals.FinishedElsewhere += ids =>
        {
            CommandsFinished?.Invoke(ids);
            foreach (var id in ids)
            {
                FinishedHere(id);
            }
        };
        // Signals may have been lost: every waiter reads its command again (and waits on if it is still open).
        signals.Resynchronise += () =>
        {
            List<Guid> all;
            lock (_sync)
            {
                all = [.. _waiting.Keys];
            }

            foreach (var id in all)
            {
                FinishedHere(id);
            }
        };
    }

    // Register before reading the command, so a commit between the read and the wait is not missed.
    public Registration Register(Guid id)
    {
        lock (_sync)
        {
            if (!_waiting.TryGetValue(id, out var waiter))
            {
                waiter = new Waiter();
                _waiting[id] = waiter;
            }

            waiter.Count++;
            return new Registration(this, id, waiter);
        }
    }

    public bool IsAwaited(Guid id)
    {
        lock (_sync)
        {
            return _waiting.ContainsKey(id);
        }
    }

    public void Finished(Guid id) => Finished([id]);

    public void Finished(IReadOnlyCollection<Guid> ids)
    {
        CommandsFinished?.Invoke(ids);
        foreach (var id in ids)
        {
            FinishedHere(id);
        }

        _signals.CommandsFinished(ids);
    }

    private void FinishedHere(Guid id)
    {
        Waiter? waiter;
        lock (_sync)
        {
            if (!_waiting.Remove(id, out waiter))
            {
                return;
            }
        }

        waiter.Signal.TrySetResult();
    }

    private void Unregister(Guid id, Waiter waiter)
    {
        lock (_sync)
        {
            if (--waiter.Count == 0 && _waiting.TryGetValue(id, out var current) && current == waiter)
            {
                _waiting.Remove(id);
            }
        }
    }

    internal sealed class Waiter
    {
        public TaskCompletionSource Signal { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Count { get; set; }
    }

    public sealed class Registration : IDisposable
    {
        private readonly CommandCompletion _owner;
        private readonly Guid _id;
        private readonly Waiter _waiter;
        private bool _disposed;

        internal Registration(CommandCompletion owner, Guid id, Waiter waiter)
        {
            _owner = owner;
            _id = id;
            _waiter = waiter;
        }

        // Completes when the command has finished; never faults.
        public Task Finished => _waiter.Signal.Task;

        public void Dispose()
        {
            if (!_disposed)
            {
                _disposed = true;
                _owner.Unregister(_id, _waiter);
            }
        }
    }
}
