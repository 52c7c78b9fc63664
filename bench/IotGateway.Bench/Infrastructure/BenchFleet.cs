namespace IotGateway.Bench.Infrastructure;

/// <summary>A simulated fleet, whatever its transport: what the fleet benchmark checks after a bulk command.</summary>
public abstract class BenchFleet : IAsyncDisposable
{
    private long _commandsReceived;
    private long _answerFailures;
    private string? _firstAnswerFailure;

    public long CommandsReceived => Interlocked.Read(ref _commandsReceived);

    public long AnswerFailures => Interlocked.Read(ref _answerFailures);

    public string? FirstAnswerFailure => _firstAnswerFailure;

    public abstract ValueTask DisposeAsync();

    protected void CountCommand() => Interlocked.Increment(ref _commandsReceived);

    protected void CountAnswerFailure(string message)
    {
        Interlocked.Increment(ref _answerFailures);
        Interlocked.CompareExchange(ref _firstAnswerFailure, message, null);
    }
}
