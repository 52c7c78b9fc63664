
namespace IotGateway.Tests.Gateway;

// README: Mqtt:Embedded:MaxPendingMessagesPerClient is how many messages the embedded broker queues per offline
// client, "oldest dropped beyond". A device that is away while more commands than that are published for it gets
// the newest ones when it returns, in queue order, and none of the older. On both providers.
public sealed class SqliteEmbeddedBrokerQueueLimitTests : EmbeddedBrokerQueueLimitTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresEmbeddedBrokerQueueLimitTests : EmbeddedBrokerQueueLimitTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class EmbeddedBrokerQueueLimitTests
{
    protected abstract DatabaseProvider Provider { get; }

    private const int Limit = 3;
    private const int Queued = 6;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    [SkippableFact]
    public async Task OfflineDeviceGetsOnlyTheNewestCommandsBeyondTheLimit()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(s => s["Mqtt:Embedded:MaxPendingMessagesPerClient"] = Limit.ToString(System.Globalization.CultureInfo.InvariantCulture), Provider);
        await using var gateway = started;

        // The article's device: a persistent session subscribed to its command topic, signed in, then gone.
        await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, "queue-limit");
        var topics = TopicRoots.Default.For("queue-limit");
        await device.SubscribeAsync(topics.CommandRequest);
        await device.PublishAsync(topics.Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("queue-limit", d => d.SignedIn, "the device signs in");
        await device.DisconnectAsync();

        // More commands than the broker may hold; each is handed to the broker (Published) while the device is away.
        var ids = new List<Guid>();
        for (var i = 0; i < Queued; i++)
        {
            ids.Add((await gateway.QueueCommandAsync("queue-limit", new { command = $"CMD-{i}" })).Id);
        }

        foreach (var id in ids)
        {
            await gateway.WaitForCommandAsync(id, CommandStatus.Published, Timeout);
        }

        Assert.DoesNotContain(device.ReceivedMessages, m => m.Topic == topics.CommandRequest);

        // Back online, the device is sent what its session kept. Once it has as many as the limit, a command queued
        // now goes out after anything else the broker kept, so when it arrives the backlog is complete. (Queued any
        // earlier, it would join the backlog still waiting to be sent and push its oldest out: the limit counts every
        // message waiting for the client, connected or not.)
        var reconnect = await device.ReconnectAsync();
        Assert.True(reconnect.IsSessionPresent, "the broker kept the device's session");
        await device.WaitForMessagesAsync(m => m.Topic == topics.CommandRequest, Limit, Timeout);
        var marker = await gateway.QueueCommandAsync("queue-limit", new { command = "MARKER" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(marker.Id.ToString(), StringComparison.Ordinal), Timeout);

        var received = device.ReceivedMessages.Where(m => m.Topic == topics.CommandRequest).Select(m => CommandId(m.Payload)).ToList();
        var expected = ids.Skip(Queued - Limit).Append(marker.Id).ToList();
        Assert.True(expected.SequenceEqual(received),
            $"Expected the newest {Limit} of {Queued} commands, then the marker ({string.Join(", ", expected.Select(id => Name(ids, id)))}); " +
            $"received {string.Join(", ", received.Select(id => Name(ids, id)))}.");
        var metrics = await gateway.Http.GetStringAsync("/metrics");
        Assert.Equal(Queued - Limit, MetricsDocumentedTests.Value(metrics, "iot_gateway_embedded_broker_messages_dropped_total"));
    }

    private static Guid CommandId(string payload)
    {
        using var json = JsonDocument.Parse(payload);
        return Guid.Parse(json.RootElement.GetProperty("uuid").GetString()!);
    }

    // CMD-0 (oldest) ... CMD-5, or MARKER, for a readable failure.
    private static string Name(List<Guid> ids, Guid id) => ids.IndexOf(id) is var i and >= 0 ? $"CMD-{i}" : "MARKER";
}
