namespace DeviceSimulator.Devices;

// Decides which commands a device takes on. A connection is closed only once the command being answered is
// out: MQTTnet's DisconnectAsync does not wait for a handler, and an answer cut off mid-way would come back
// as a redelivered command. Commands that find the door closed are left unacknowledged in the persistent
// session, so the broker delivers them again at the next connection.
internal sealed class CommandDoor
{
    private readonly Lock _lock = new();
    private bool _open;
    private int _inside;
    private TaskCompletionSource? _emptied;

    public void Open()
    {
        lock (_lock)
        {
            _open = true;
        }
    }

    public bool TryEnter()
    {
        lock (_lock)
        {
            if (!_open)
            {
                return false;
            }

            _inside++;
            return true;
        }
    }

    public void Leave()
    {
        lock (_lock)
        {
            if (--_inside == 0 && _emptied is not null)
            {
                _emptied.TrySetResult();
                _emptied = null;
            }
        }
    }

    public void Close()
    {
        lock (_lock)
        {
            _open = false;
        }
    }

    // Closes the door; the task completes when the last command inside has left.
    public Task CloseAsync()
    {
        lock (_lock)
        {
            _open = false;
            if (_inside == 0)
            {
                return Task.CompletedTask;
            }

            _emptied ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _emptied.Task;
        }
    }
}
