namespace IotGateway.Data;

// SQLite has one writer at a time. A writer that finds the database locked sleeps in SQLite's busy handler
// (1, 2, 5, 10… ms) and BEGIN DEFERRED transactions can fail outright on upgrade; under load that turned
// millisecond commands into tens of milliseconds. Every write in the gateway takes this gate first, so
// writers queue in memory and start the moment the previous commit ends. Readers never take it (WAL).
public sealed class DatabaseWriteGate : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    public async ValueTask<Releaser> EnterAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        return new Releaser(_gate);
    }

    public void Dispose() => _gate.Dispose();

    public readonly struct Releaser(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }
}
