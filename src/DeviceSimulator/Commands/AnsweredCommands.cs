using System.Text.Json.Nodes;

namespace DeviceSimulator.Commands;

// The uuids of the last few commands this device answered, with their results. QoS 2 is exactly-once only while a
// connection lives, and a TCP server sends a command again when its answer does not arrive in time: a command seen
// again is answered again with the remembered result, and not executed twice.
internal sealed class AnsweredCommands
{
    private const int Remembered = 16;
    private readonly (string Uuid, JsonNode? Result)[] _answers = new (string, JsonNode?)[Remembered];
    private int _next;

    public bool Contains(string uuid) => TryGetResult(uuid, out _);

    public bool TryGetResult(string uuid, out JsonNode? result)
    {
        foreach (var (known, remembered) in _answers)
        {
            if (known == uuid)
            {
                result = remembered?.DeepClone();
                return true;
            }
        }

        result = null;
        return false;
    }

    public void Add(string uuid, JsonNode? result = null)
    {
        _answers[_next] = (uuid, result?.DeepClone());
        _next = (_next + 1) % Remembered;
    }
}
