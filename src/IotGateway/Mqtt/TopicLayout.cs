using IotGateway.Devices;
using IotGateway.Protocol;

namespace IotGateway.Mqtt;

public enum TopicKind
{
    Data,
    CommandResponse,
    Register,
}

// The article's four topics per device: {prefix}/{deviceId}.
public sealed class TopicLayout(IOptions<MqttOptions> options)
{
    private readonly TopicOptions _topics = options.Value.Topics;
    private readonly string? _group = string.IsNullOrEmpty(options.Value.SharedSubscriptionGroup) ? null : options.Value.SharedSubscriptionGroup;

    // With a shared subscription group, the broker splits readings and answers between the instances of the group;
    // presence stays a plain subscription on every instance (brokers send no retained messages to shared
    // subscriptions, and every instance wants presence).
    public IReadOnlyList<string> SubscriptionFilters =>
    [
        Shared($"{_topics.Data}/+"),
        Shared($"{_topics.CommandResponse}/+"),
        $"{_topics.Register}/+",
    ];

    private string Shared(string filter) => _group is null ? filter : $"$share/{_group}/{filter}";

    public bool SharesSubscriptions => _group is not null;

    // What an instance unsubscribes from when it stops cleanly, so the broker gives the others its share meanwhile.
    public IReadOnlyList<string> SharedFilters => _group is null ? [] : SubscriptionFilters.Take(2).ToList();

    public string CommandRequest(string deviceId) => TopicRoots.DeviceTopic(_topics.CommandRequest, deviceId);

    public string Register(string deviceId) => TopicRoots.DeviceTopic(_topics.Register, deviceId);

    // Splits a received topic into its kind and device id; false for anything else (extra levels, foreign topics).
    public bool TryParse(string topic, out TopicKind kind, out string deviceId) =>
        TryMatch(topic, out kind, out deviceId) && DeviceIds.IsValid(deviceId);

    // The same without judging the device id: ingest tells an unknown topic from an invalid id.
    public bool TryMatch(string topic, out TopicKind kind, out string deviceId)
    {
        var slash = topic.LastIndexOf('/');
        deviceId = slash < 0 ? "" : topic[(slash + 1)..];
        var prefix = slash < 0 ? "" : topic.AsSpan(0, slash);
        kind = default;
        if (prefix.SequenceEqual(_topics.Data))
        {
            kind = TopicKind.Data;
        }
        else if (prefix.SequenceEqual(_topics.CommandResponse))
        {
            kind = TopicKind.CommandResponse;
        }
        else if (prefix.SequenceEqual(_topics.Register))
        {
            kind = TopicKind.Register;
        }
        else
        {
            return false;
        }

        return true;
    }

    // One topic level without wildcards: it becomes $share/{group}/….
    public static string? ValidateGroup(string group) =>
        group.IndexOfAny(['/', '+', '#', '\0']) >= 0 || group.Any(char.IsControl)
            ? $"'{group}' must be one topic level: no '/', '+', '#' or control characters."
            : null;

    public static string? ValidatePrefix(string? prefix)
    {
        if (string.IsNullOrEmpty(prefix))
        {
            return "must not be empty.";
        }

        if (prefix.IndexOfAny(['+', '#', '\0']) >= 0)
        {
            return $"'{prefix}' must not contain the wildcards '+', '#' or NUL.";
        }

        if (prefix.StartsWith('/') || prefix.EndsWith('/'))
        {
            return $"'{prefix}' must not start or end with '/'.";
        }

        return null;
    }
}
