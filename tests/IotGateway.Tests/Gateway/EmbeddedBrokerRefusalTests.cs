using Npgsql;

namespace IotGateway.Tests.Gateway;

// What the embedded broker refuses at the door, so that nothing a device sends can stop it from saving the sessions:
// text the database cannot keep (PostgreSQL's text holds no U+0000 and its index entries stay under ~2.7 KB).
public sealed class SqliteEmbeddedBrokerRefusalTests : EmbeddedBrokerRefusalTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresEmbeddedBrokerRefusalTests : EmbeddedBrokerRefusalTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;

    // A row the database refuses for a reason nobody foresaw (here a trigger, standing in for a provider's limit)
    // costs that one session its saving, not every other session's.
    [SkippableFact]
    public async Task ASessionTheDatabaseRefusesDoesNotHoldBackTheOthers()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(provider: Provider);
        await using var gateway = started;
        await using (var connection = new NpgsqlConnection(gateway.PostgresConnectionString))
        {
            await connection.OpenAsync();
            await using var trigger = new NpgsqlCommand("""
                CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
                BEGIN
                    IF NEW."ClientId" LIKE 'poison%' THEN
                        RAISE EXCEPTION 'index row size exceeds btree version 4 maximum' USING ERRCODE = '54000';
                    END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql;
                CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON "BrokerSessions" FOR EACH ROW EXECUTE FUNCTION refuse_poison();
                """, connection);
            await trigger.ExecuteNonQueryAsync();
        }

        await using var poison = await TestMqttClient.ConnectAsync("127.0.0.1", port, "poison-1", Persistent);
        await using var keeper = await TestMqttClient.ConnectAsync("127.0.0.1", port, "keeper", Persistent);
        await keeper.SubscribeAsync("lab/keeper");
        await Eventually.UntilAsync(() => gateway.Logs.Contains("Embedded broker cannot save"), Timeout, "a write met the refusal");

        await gateway.RestartAsync();
        Assert.True((await keeper.ReconnectAsync()).IsSessionPresent, "the other session was saved");
        await PublishAsync(port, "lab/keeper");
        await keeper.WaitForMessageAsync("lab/keeper", Timeout);
        Assert.True(gateway.Logs.Contains("Embedded broker cannot save the session of poison-1, the database refuses it"), "the refused session is named");
    }
}

public abstract class EmbeddedBrokerRefusalTests
{
    protected static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    protected abstract DatabaseProvider Provider { get; }

    public static TheoryData<string> HostileText => ["long", "nul"];

    [SkippableTheory]
    [MemberData(nameof(HostileText))]
    public async Task AClientIdTheDatabaseCannotKeepIsRefusedAndTheOtherSessionsAreSaved(string kind)
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(provider: Provider);
        await using var gateway = started;
        await using var keeper = await TestMqttClient.ConnectAsync("127.0.0.1", port, "keeper", Persistent);

        var refused = await Assert.ThrowsAsync<MqttConnectRefusedException>(() => TestMqttClient.ConnectAsync("127.0.0.1", port, Hostile(kind, "device-"), Persistent));
        Assert.Equal(MqttClientConnectResultCode.ClientIdentifierNotValid, refused.ResultCode);
        Assert.Contains(kind == "nul" ? "U+0000" : "bytes", refused.Result.ReasonString, StringComparison.Ordinal);
        await Eventually.UntilAsync(() => gateway.Logs.Lines.Any(l => l.Contains("Embedded broker refused client device-", StringComparison.Ordinal)
            && (kind == "long" || l.Contains(@"device-\u0000", StringComparison.Ordinal))), Timeout, "the refusal is logged, the client id escaped");

        await keeper.SubscribeAsync("lab/keeper");
        await gateway.RestartAsync();
        Assert.True((await keeper.ReconnectAsync()).IsSessionPresent, "the other session was saved");
        await PublishAsync(port, "lab/keeper");
        await keeper.WaitForMessageAsync("lab/keeper", Timeout);
        Assert.False(gateway.Logs.Contains("cannot save"), "every save succeeded");
    }

    [SkippableTheory]
    [MemberData(nameof(HostileText))]
    public async Task ATopicFilterTheDatabaseCannotKeepIsRefusedAndTheSessionIsSaved(string kind)
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(provider: Provider);
        await using var gateway = started;
        await using var keeper = await TestMqttClient.ConnectAsync("127.0.0.1", port, "keeper", Persistent);

        var hostile = Hostile(kind, "lab/");
        var result = await keeper.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(hostile, MqttQualityOfServiceLevel.AtLeastOnce).WithTopicFilter("lab/keeper", MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientSubscribeResultCode.TopicFilterInvalid, result.Items.Single(i => i.TopicFilter.Topic == hostile).ResultCode);
        Assert.Equal(MqttClientSubscribeResultCode.GrantedQoS1, result.Items.Single(i => i.TopicFilter.Topic == "lab/keeper").ResultCode);
        await Eventually.UntilAsync(() => gateway.Logs.Lines.Any(l => l.Contains("Embedded broker refused the subscription of keeper to lab/", StringComparison.Ordinal)
            && (kind == "long" || l.Contains(@"lab/\u0000", StringComparison.Ordinal))), Timeout, "the refusal is logged, the filter escaped");

        await gateway.RestartAsync();
        Assert.True((await keeper.ReconnectAsync()).IsSessionPresent, "the session was saved");
        await PublishAsync(port, "lab/keeper");
        await keeper.WaitForMessageAsync("lab/keeper", Timeout);
        Assert.False(gateway.Logs.Contains("cannot save"), "every save succeeded");
    }

    // Ingest:MaxPayloadBytes holds at the broker: a larger message is refused when it arrives (MQTT 5: 0x97 in the
    // PUBACK), so it is never queued or saved for the subscribers, whatever the topic.
    [SkippableFact]
    public async Task AMessageLargerThanTheGatewayTakesIsRefusedBeforeItIsQueued()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(s => s["Ingest:MaxPayloadBytes"] = "1024", provider: Provider);
        await using var gateway = started;
        await using var keeper = await TestMqttClient.ConnectAsync("127.0.0.1", port, "keeper", Persistent);
        await keeper.SubscribeAsync("lab/#");
        await keeper.DisconnectAsync();

        await using var sender = await TestMqttClient.ConnectAsync("127.0.0.1", port, "big-sender");
        var refused = await sender.Client.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("lab/big").WithPayload(new byte[1025])
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Equal(MqttClientPublishReasonCode.QuotaExceeded, refused.ReasonCode);
        Assert.Contains("1025 bytes", refused.ReasonString, StringComparison.Ordinal);
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("Embedded broker refused a message from big-sender on lab/big: its payload of 1025 bytes", StringComparison.Ordinal));

        // MQTT 3.1.1 has no reason code: the message is acknowledged and dropped, with the same log line.
        await using var sender311 = await TestMqttClient.ConnectAsync("127.0.0.1", port, "big-sender-311", o => o.WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V311));
        await sender311.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("lab/big-311").WithPayload(new byte[4096])
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("Embedded broker refused a message from big-sender-311 on lab/big-311", StringComparison.Ordinal));

        await sender.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("lab/fits").WithPayload(new byte[1024])
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
        await keeper.ReconnectAsync();
        await keeper.WaitForMessageAsync("lab/fits", Timeout);
        Assert.DoesNotContain(keeper.ReceivedMessages, m => m.Topic.StartsWith("lab/big", StringComparison.Ordinal));
    }

    // Mqtt:Embedded:MaxSubscriptionsPerClient: a filter beyond it is refused (0x97), the packet's others granted; a
    // filter subscribed again is no new one, and an unsubscription frees a place. Across a restart too.
    [SkippableFact]
    public async Task SubscriptionsBeyondTheLimitAreRefused()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(s => s["Mqtt:Embedded:MaxSubscriptionsPerClient"] = "3", provider: Provider);
        await using var gateway = started;
        await using var device = await TestMqttClient.ConnectAsync("127.0.0.1", port, "many", Persistent);
        await device.SubscribeAsync("lab/1");
        var codes = await SubscribeAsync(device, "lab/1", "lab/2", "lab/3", "lab/4");
        Assert.Equal([MqttClientSubscribeResultCode.GrantedQoS1, MqttClientSubscribeResultCode.GrantedQoS1, MqttClientSubscribeResultCode.GrantedQoS1,
            MqttClientSubscribeResultCode.QuotaExceeded], codes);
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("Embedded broker refused the subscription of many to lab/4: the client has Mqtt:Embedded:MaxSubscriptionsPerClient (3)", StringComparison.Ordinal));

        await gateway.RestartAsync();
        Assert.True((await device.ReconnectAsync()).IsSessionPresent);
        Assert.Equal([MqttClientSubscribeResultCode.QuotaExceeded], await SubscribeAsync(device, "lab/5"));
        await device.Client.UnsubscribeAsync("lab/1");
        Assert.Equal([MqttClientSubscribeResultCode.GrantedQoS1], await SubscribeAsync(device, "lab/5"));
    }

    private static async Task<List<MqttClientSubscribeResultCode>> SubscribeAsync(TestMqttClient client, params string[] filters)
    {
        var options = new MqttClientSubscribeOptionsBuilder();
        foreach (var filter in filters)
        {
            options.WithTopicFilter(filter, MqttQualityOfServiceLevel.AtLeastOnce);
        }

        var result = await client.Client.SubscribeAsync(options.Build());
        return filters.Select(f => result.Items.Single(i => i.TopicFilter.Topic == f).ResultCode).ToList();
    }

    protected static void Persistent(MqttClientOptionsBuilder options) => options.WithCleanStart(false).WithSessionExpiryInterval(600);

    protected static async Task PublishAsync(int port, string topic)
    {
        await using var sender = await TestMqttClient.ConnectAsync("127.0.0.1", port, $"sender-{Guid.NewGuid():N}");
        await sender.PublishAsync(topic, "hello", MqttQualityOfServiceLevel.AtLeastOnce);
    }

    // Past PostgreSQL's index entry limit (about 2,700 bytes), or holding U+0000, which its text cannot.
    private static string Hostile(string kind, string prefix) => kind == "nul" ? prefix + "\0x" : prefix + new string('x', 3000);
}
