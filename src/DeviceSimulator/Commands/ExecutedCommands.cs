namespace DeviceSimulator.Commands;

// The outcomes of the last commands this device executed, by uuid. QoS 2 is exactly-once only while a connection
// lives, and a gateway killed between publishing a command and recording it publishes it again: a command that comes
// again is answered again with the remembered result, never executed twice. Bounded: the oldest are forgotten.
internal sealed class ExecutedCommands
{
    public const int Remembered = 256;

    private readonly Dictionary<string, CommandOutcome> _outcomes = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();

    public bool TryGet(string uuid, out CommandOutcome outcome) => _outcomes.TryGetValue(uuid, out outcome!);

    public void Add(string uuid, CommandOutcome outcome)
    {
        if (!_outcomes.TryAdd(uuid, outcome))
        {
            return;
        }

        _order.Enqueue(uuid);
        if (_order.Count > Remembered)
        {
            _outcomes.Remove(_order.Dequeue());
        }
    }
}
