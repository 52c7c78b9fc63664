using System.Text;

namespace IotGateway.Mqtt.Embedded;

// Text the broker keeps in the database must fit both providers: PostgreSQL's text cannot hold U+0000, and a btree
// index entry must stay under about 2,700 bytes (the key of BrokerSessions is the client id; that of
// BrokerSubscriptions, the client id and the topic filter together). MQTT forbids U+0000 anyway [MQTT-1.5.4-2].
internal static class StorableText
{
    public const int MaxClientIdBytes = 1024;
    public const int MaxTopicFilterBytes = 1024;

    // Null when the text can be kept; otherwise why not, for the log line and the reason string.
    public static string? Problem(string? text, int maxBytes = int.MaxValue)
    {
        if (text is null)
        {
            return null;
        }

        if (text.Contains('\0', StringComparison.Ordinal))
        {
            return "it holds the character U+0000";
        }

        var bytes = Encoding.UTF8.GetByteCount(text);
        return bytes > maxBytes ? $"it is {bytes} bytes long, more than {maxBytes}" : null;
    }
}
