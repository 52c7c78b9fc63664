using MQTTnet.Formatter;

namespace IotGateway.Bench.Benchmarks;

/// <summary>
/// The MQTT library's own limit, run by the ingest benchmark as a fresh process (`IotGateway.Bench mqttnet-drain
/// host port clientId count`) so it pays for its start and JIT as the gateway does: an MQTTnet 5 client resumes a
/// persistent session as the gateway's client does (MQTT 5, receive maximum 4096, manual acknowledgement) and
/// acknowledges each message at once, storing nothing. It exits when it has received the given count. With a fifth
/// argument, <c>buffered</c>, the client runs over the gateway's <see cref="IotGateway.Mqtt.BufferedMqttChannel"/>
/// instead of MQTTnet's own channel.
/// </summary>
public static class MqttnetDrain
{
    public const string Subcommand = "mqttnet-drain";
    public const string DrainLinePrefix = "first-to-last-ms=";
    public const string BufferedOption = "buffered";

    public static async Task<int> RunAsync(string[] args)
    {
        if (args is not [var host, var portText, var clientId, var countText, .. var rest]
            || rest is not ([] or [BufferedOption])
            || !int.TryParse(portText, CultureInfo.InvariantCulture, out var port)
            || !int.TryParse(countText, CultureInfo.InvariantCulture, out var count))
        {
            await Console.Error.WriteLineAsync($"usage: {Subcommand} host port clientId count [{BufferedOption}]");
            return 2;
        }

        var received = 0;
        long first = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var client = rest is [BufferedOption]
            ? new MqttClientFactory().CreateMqttClient(new IotGateway.Mqtt.BufferedChannelAdapterFactory())
            : new MqttClientFactory().CreateMqttClient();
        client.ApplicationMessageReceivedAsync += async e =>
        {
            e.AutoAcknowledge = false;
            Interlocked.CompareExchange(ref first, System.Diagnostics.Stopwatch.GetTimestamp(), 0);
            await e.AcknowledgeAsync(CancellationToken.None);
            if (Interlocked.Increment(ref received) == count)
            {
                done.TrySetResult();
            }
        };
        var options = new MqttClientOptionsBuilder()
            .WithTcpServer(host, port)
            .WithClientId(clientId)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithCleanStart(false)
            .WithSessionExpiryInterval(3600)
            .WithReceiveMaximum(4096)
            .Build();
        var result = await client.ConnectAsync(options);
        if (result.ResultCode != MqttClientConnectResultCode.Success || !result.IsSessionPresent)
        {
            await Console.Error.WriteLineAsync($"could not resume the session of {clientId}: {result.ResultCode}, session present {result.IsSessionPresent}");
            return 1;
        }

        if (await Task.WhenAny(done.Task, Task.Delay(TimeSpan.FromSeconds(60 + count / 5000))) != done.Task)
        {
            await Console.Error.WriteLineAsync($"received {received} of {count} messages in time");
            return 1;
        }

        // Read by the ingest benchmark: the drain itself, without the process start, as the gateway's is timed.
        Console.WriteLine($"{DrainLinePrefix}{System.Diagnostics.Stopwatch.GetElapsedTime(first).TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture)}");
        await client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().Build());
        return 0;
    }

    /// <summary>A persistent session subscribed the way the gateway subscribes (QoS 2), so a backlog queues up for it.</summary>
    public static async Task CreateSessionAsync(MosquittoBroker broker, string clientId, string topicFilter, CancellationToken cancellationToken)
    {
        using var client = Infrastructure.MqttClients.Factory.CreateMqttClient();
        var options = Infrastructure.MqttClients.Options(broker, clientId).WithCleanStart(true).WithSessionExpiryInterval(3600).Build();
        await Infrastructure.MqttClients.ConnectAsync(client, options, cancellationToken);
        await Infrastructure.MqttClients.SubscribeAsync(client, topicFilter, MqttQualityOfServiceLevel.ExactlyOnce, cancellationToken);
        await client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().Build(), cancellationToken);
    }
}
