using DeviceSimulator.Devices;

namespace IotGateway.Tests.Simulator;

// A plain MQTT client playing the article's server: watches every device topic and sends commands.
internal sealed class GatewayStandIn : IAsyncDisposable
{
    private readonly IMqttClient _client;
    private readonly object _gate = new();
    private readonly List<SeenMessage> _seen = [];
    private readonly List<(Func<SeenMessage, bool> Match, int Occurrence, TaskCompletionSource<SeenMessage> Found)> _waiters = [];

    private readonly TopicRoots _topics;

    private GatewayStandIn(IMqttClient client, TopicRoots topics)
    {
        _client = client;
        _topics = topics;
    }

    public static async Task<GatewayStandIn> ConnectAsync(SimulatorBroker broker, TopicRoots? topics = null)
    {
        var client = new MqttClientFactory().CreateMqttClient();
        var standIn = new GatewayStandIn(client, topics ?? new TopicRoots());
        client.ApplicationMessageReceivedAsync += e =>
        {
            standIn.Record(new SeenMessage(e.ApplicationMessage.Topic, e.ApplicationMessage.ConvertPayloadToString(), e.ApplicationMessage.Retain));
            return Task.CompletedTask;
        };
        var options = new MqttClientOptionsBuilder()
            .WithTcpServer("127.0.0.1", broker.Port)
            .WithClientId("gateway-stand-in-" + Guid.NewGuid().ToString("N"))
            .Build();
        await client.ConnectAsync(options);
        foreach (var root in new[] { standIn._topics.Data, standIn._topics.CommandRequest, standIn._topics.CommandResponse, standIn._topics.Register })
        {
            await client.SubscribeAsync($"{root}/#", MqttQualityOfServiceLevel.ExactlyOnce);
        }

        return standIn;
    }

    public IReadOnlyList<SeenMessage> Seen
    {
        get
        {
            lock (_gate)
            {
                return [.. _seen];
            }
        }
    }

    public async Task<string> SendCommandAsync(string deviceId, string command, object? arguments = null)
    {
        var uuid = Guid.NewGuid().ToString();
        var request = CommandRequest.ToJson(uuid, command, arguments is null ? null : JsonSerializer.Serialize(arguments));
        await _client.PublishBinaryAsync(TopicRoots.DeviceTopic(_topics.CommandRequest, deviceId), request, MqttQualityOfServiceLevel.ExactlyOnce);
        return uuid;
    }

    public Task SendRawAsync(string deviceId, string payload) =>
        _client.PublishStringAsync(TopicRoots.DeviceTopic(_topics.CommandRequest, deviceId), payload, MqttQualityOfServiceLevel.ExactlyOnce);

    public async Task<JsonElement> WaitForAnswerAsync(string deviceId, string uuid, TimeSpan timeout)
    {
        var answer = await WaitForAsync(
            m => m.Topic == TopicRoots.DeviceTopic(_topics.CommandResponse, deviceId) && m.Payload.Contains(uuid, StringComparison.Ordinal),
            timeout, $"the answer of {deviceId} to {uuid}");
        return JsonDocument.Parse(answer.Payload).RootElement.Clone();
    }

    // The occurrence-th message (already seen or still to come) that matches; fails the test after the timeout.
    public async Task<SeenMessage> WaitForAsync(Func<SeenMessage, bool> match, TimeSpan timeout, string what, int occurrence = 1)
    {
        TaskCompletionSource<SeenMessage> found = new(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_seen.Where(match).Skip(occurrence - 1).FirstOrDefault() is { } earlier)
            {
                return earlier;
            }

            _waiters.Add((match, occurrence, found));
        }

        try
        {
            return await found.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"waited {timeout.TotalSeconds} s for {what}; saw:\n{string.Join('\n', Seen.Select(m => $"{m.Topic} {m.Payload}"))}");
        }
    }

    public Task<SeenMessage> WaitForPresenceAsync(string deviceId, string presence, TimeSpan timeout, int occurrence = 1) =>
        WaitForAsync(m => m.Topic == TopicRoots.DeviceTopic(_topics.Register, deviceId) && m.Payload == presence, timeout, $"{presence} #{occurrence} of {deviceId}", occurrence);

    public int Count(Func<SeenMessage, bool> match)
    {
        lock (_gate)
        {
            return _seen.Count(match);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().Build());
        _client.Dispose();
    }

    private void Record(SeenMessage message)
    {
        lock (_gate)
        {
            _seen.Add(message);
            foreach (var waiter in _waiters.ToList())
            {
                if (waiter.Match(message) && _seen.Count(waiter.Match) >= waiter.Occurrence)
                {
                    _waiters.Remove(waiter);
                    waiter.Found.TrySetResult(message);
                }
            }
        }
    }
}

internal sealed record SeenMessage(string Topic, string Payload, bool Retained);
