namespace DeviceSimulator.Commands;

// The uuids of the last few commands this device answered. QoS 2 is exactly-once only while a connection
// lives: a command whose acknowledgement was cut short (REBOOT drops the connection right after answering)
// comes again with the next connection, and must not be executed twice.
internal sealed class AnsweredCommands
{
    private const int Remembered = 16;
    private readonly string[] _uuids = new string[Remembered];
    private int _next;

    public bool Contains(string uuid) => Array.IndexOf(_uuids, uuid) >= 0;

    public void Add(string uuid)
    {
        _uuids[_next] = uuid;
        _next = (_next + 1) % Remembered;
    }
}
