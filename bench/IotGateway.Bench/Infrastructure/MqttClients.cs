using MQTTnet.Formatter;

namespace IotGateway.Bench.Infrastructure;

/// <summary>MQTTnet plumbing shared by the benchmarks: options, QoS 2 publishes and subscribes that check the broker's answer.</summary>
public static class MqttClients
{
    public static readonly MqttClientFactory Factory = new();

    public static MqttClientOptionsBuilder Options(MosquittoBroker broker, string clientId) => new MqttClientOptionsBuilder()
        .WithTcpServer(broker.Host, broker.Port)
        .WithClientId(clientId)
        .WithProtocolVersion(MqttProtocolVersion.V500)
        .WithTimeout(TimeSpan.FromSeconds(30))
        // Thousands of idle simulated devices: a long keep-alive keeps their pings out of the figures.
        .WithKeepAlivePeriod(TimeSpan.FromSeconds(60));

    /// <summary>
    /// Connects a client created by <see cref="Factory"/>; attach the message handler before this call, since a
    /// persistent session may deliver its backlog the moment the connection opens.
    /// </summary>
    public static async Task ConnectAsync(IMqttClient client, MqttClientOptions options, CancellationToken cancellationToken)
    {
        var result = await client.ConnectAsync(options, cancellationToken);
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new BenchFailure($"The broker refused MQTT client {options.ClientId}: {result.ResultCode} {result.ReasonString}");
        }
    }

    public static async Task SubscribeAsync(IMqttClient client, string topicFilter, MqttQualityOfServiceLevel qos, CancellationToken cancellationToken)
    {
        var options = Factory.CreateSubscribeOptionsBuilder().WithTopicFilter(f => f.WithTopic(topicFilter).WithQualityOfServiceLevel(qos)).Build();
        var result = await client.SubscribeAsync(options, cancellationToken);
        var code = result.Items.Single().ResultCode;
        if ((int)code >= 0x80)
        {
            throw new BenchFailure($"The broker refused the subscription of {client.Options.ClientId} to {topicFilter}: {code}");
        }
    }

    public static MqttApplicationMessage Message(string topic, byte[] payload, MqttQualityOfServiceLevel qos, bool retain = false) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(qos).WithRetainFlag(retain).Build();

    /// <summary>Publishes and throws unless the broker accepted it (reason codes below 0x80 are acceptances).</summary>
    public static async Task PublishAsync(IMqttClient client, MqttApplicationMessage message, CancellationToken cancellationToken)
    {
        var result = await client.PublishAsync(message, cancellationToken);
        if ((int)result.ReasonCode >= 0x80)
        {
            throw new BenchFailure($"The broker refused a publish of {client.Options.ClientId} to {message.Topic}: {result.ReasonCode} {result.ReasonString}");
        }
    }
}
