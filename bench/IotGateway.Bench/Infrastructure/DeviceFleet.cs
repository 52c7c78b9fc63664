using IotGateway.Protocol;

namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// Always-online devices played in-process, each its own MQTT connection and persistent session, as the article's
/// device: subscribed to iot/cmd/req/{id} at QoS 2, signed in with a retained SIGN_IN, answering every command
/// with PONG on iot/cmd/resp/{id} at once.
/// </summary>
public sealed class DeviceFleet : BenchFleet
{
    private static readonly byte[] SignIn = "SIGN_IN"u8.ToArray();
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(30);

    private readonly List<IMqttClient> _clients = [];

    public int Count => _clients.Count;

    /// <summary>Connects and signs in every device, <paramref name="concurrency"/> at a time (a burst of thousands of connects would only queue in the accept backlog).</summary>
    public static async Task<DeviceFleet> ConnectAsync(MosquittoBroker broker, IReadOnlyList<string> deviceIds, int concurrency, CancellationToken cancellationToken)
    {
        var fleet = new DeviceFleet();
        try
        {
            var parallel = new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken };
            await Parallel.ForEachAsync(deviceIds, parallel, async (deviceId, ct) =>
            {
                var client = await fleet.ConnectDeviceAsync(broker, deviceId, ct);
                lock (fleet._clients)
                {
                    fleet._clients.Add(client);
                }
            });
            return fleet;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var connected = fleet.Count;
            await fleet.DisposeAsync();
            throw new BenchFailure($"Only {connected} of {deviceIds.Count} simulated devices connected and signed in: {e.Message}", e);
        }
    }

    public override ValueTask DisposeAsync()
    {
        // No DISCONNECT round trips: closing the sockets is enough, the broker is about to go as well.
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        _clients.Clear();
        return ValueTask.CompletedTask;
    }

    private async Task<IMqttClient> ConnectDeviceAsync(MosquittoBroker broker, string deviceId, CancellationToken cancellationToken)
    {
        var client = MqttClients.Factory.CreateMqttClient();
        client.ApplicationMessageReceivedAsync += e => OnCommandAsync(client, deviceId, e);
        try
        {
            var options = MqttClients.Options(broker, deviceId).WithCleanStart(false).WithSessionExpiryInterval(3600).Build();
            await MqttClients.ConnectAsync(client, options, cancellationToken);
            await MqttClients.SubscribeAsync(client, TopicRoots.Default.For(deviceId).CommandRequest, MqttQualityOfServiceLevel.ExactlyOnce, cancellationToken);
            await MqttClients.PublishAsync(client,
                MqttClients.Message(TopicRoots.Default.For(deviceId).Register, SignIn, MqttQualityOfServiceLevel.ExactlyOnce, retain: true), cancellationToken);
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    private Task OnCommandAsync(IMqttClient client, string deviceId, MqttApplicationMessageReceivedEventArgs e)
    {
        CountCommand();
        var answer = PingResponder.Answer(deviceId, e.ApplicationMessage.Payload);
        if (answer is null)
        {
            RecordFailure($"{deviceId} got a command it could not parse: {e.ApplicationMessage.ConvertPayloadToString()}");
            return Task.CompletedTask;
        }

        // Not awaited: handlers run one at a time per client, and waiting here for the answer's QoS 2 flow would
        // also hold back the acknowledgement of the command itself.
        _ = AnswerAsync(client, deviceId, answer);
        return Task.CompletedTask;
    }

    private async Task AnswerAsync(IMqttClient client, string deviceId, byte[] answer)
    {
        try
        {
            using var timeout = new CancellationTokenSource(AnswerTimeout);
            await MqttClients.PublishAsync(client, MqttClients.Message(TopicRoots.Default.For(deviceId).CommandResponse, answer, MqttQualityOfServiceLevel.ExactlyOnce), timeout.Token);
        }
        catch (Exception ex)
        {
            RecordFailure($"{deviceId} could not publish its answer: {ex.Message}");
        }
    }

    private void RecordFailure(string message)
    {
        CountAnswerFailure(message);
    }
}
