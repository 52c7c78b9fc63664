using System.Text;
using MQTTnet.Formatter;

namespace IotGateway.Tests.Mqtt.Conformance;

public sealed record BrokerEndpoint(string Name, string Host, int Port);

// The points of the Eclipse Paho interoperability suite (interoperability/client_test5.py, named after its tests)
// and of issue 21, as checks with real clients (MQTTnet's, and raw packets where MQTTnet's client cannot say what
// the point needs). A check throws when the broker misses the point. Waiting for something NOT to happen uses a
// barrier: a later message that would have come after it on the same path.
internal static class ConformancePoints
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static readonly IReadOnlyDictionary<string, Func<BrokerEndpoint, string, Task>> All = new Dictionary<string, Func<BrokerEndpoint, string, Task>>
    {
        ["retained_message"] = RetainedMessage,
        ["retained_message_expiry"] = RetainedMessageExpiry,
        ["message_expiry"] = MessageExpiry,
        ["will_message"] = WillMessage,
        ["will_on_disconnect_with_will_message"] = WillOnDisconnectWithWillMessage,
        ["will_delay"] = WillDelay,
        ["will_on_session_takeover"] = WillOnSessionTakeover,
        ["no_will_when_takeover_resumes_the_session"] = NoWillWhenTakeoverResumesTheSession,
        ["keepalive"] = KeepAlive,
        ["zero_length_clientid"] = ZeroLengthClientId,
        ["zero_length_clientid_311"] = ZeroLengthClientId311,
        ["zero_length_clientid_311_without_clean_session"] = ZeroLengthClientId311WithoutCleanSession,
        ["offline_message_queueing"] = OfflineMessageQueueing,
        ["redelivery_on_reconnect"] = RedeliveryOnReconnect,
        ["qos2_exactly_once"] = Qos2ExactlyOnce,
        ["qos2_resent_publish_is_delivered_once"] = Qos2ResentPublishIsDeliveredOnce,
        ["overlapping_subscriptions"] = OverlappingSubscriptions,
        ["dollar_topics"] = DollarTopics,
        ["unsubscribe"] = Unsubscribe,
        ["session_expiry"] = SessionExpiry,
        ["session_expiry_zero_on_disconnect"] = SessionExpiryZeroOnDisconnect,
        ["session_expiry_raised_on_disconnect"] = SessionExpiryRaisedOnDisconnect,
        ["user_properties"] = UserProperties,
        ["payload_format_and_request_response"] = PayloadFormatAndRequestResponse,
        ["subscribe_options_no_local"] = SubscribeOptionsNoLocal,
        ["subscribe_options_retain_as_published"] = SubscribeOptionsRetainAsPublished,
        ["subscribe_options_retain_handling"] = SubscribeOptionsRetainHandling,
        ["subscribe_identifiers"] = SubscribeIdentifiers,
        ["client_topic_alias"] = ClientTopicAlias,
        ["maximum_packet_size"] = MaximumPacketSize,
        ["flow_control"] = FlowControl,
        ["shared_subscriptions"] = SharedSubscriptions,
    };

    private static async Task RetainedMessage(BrokerEndpoint broker, string id)
    {
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/state", "on", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        await publisher.PublishAsync($"{id}/marker", "m", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);

        await using var first = await Connect(broker, $"{id}-first");
        await first.SubscribeAsync($"{id}/state");
        var kept = await first.WaitForMessageAsync($"{id}/state", Timeout);
        Assert.True(kept.Retain);
        Assert.Equal("on", kept.Payload);

        // An empty retained message deletes it.
        await publisher.PublishAsync($"{id}/state", "", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        await using var second = await Connect(broker, $"{id}-second");
        await SubscribeThenRetainedBarrierAsync(second, $"{id}/state", $"{id}/marker");
        Assert.DoesNotContain(second.ReceivedMessages, m => m.Topic == $"{id}/state");
        await publisher.PublishAsync($"{id}/marker", "", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
    }

    // The article's retained SIGN_IN with its 300 s expiry, shortened to 2 s.
    private static async Task RetainedMessageExpiry(BrokerEndpoint broker, string id)
    {
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync(Message($"{id}/short", "SIGN_IN", retain: true, expiry: 2));
        var published = DateTimeOffset.UtcNow;
        await publisher.PublishAsync($"{id}/marker", "m", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);

        await using var early = await Connect(broker, $"{id}-early");
        await early.SubscribeAsync($"{id}/short");
        var fresh = await early.WaitForMessageAsync($"{id}/short", Timeout);
        Assert.True(fresh.Retain);
        Assert.InRange(fresh.MessageExpiryInterval, 1u, 2u);

        await UntilAsync(published.AddSeconds(3), "the retained message's expiry has passed");
        await using var late = await Connect(broker, $"{id}-late");
        await SubscribeThenRetainedBarrierAsync(late, $"{id}/short", $"{id}/marker");
        Assert.DoesNotContain(late.ReceivedMessages, m => m.Topic == $"{id}/short");
        await publisher.PublishAsync($"{id}/marker", "", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
    }

    // Queued for an offline session: the expired one is dropped, the other one arrives with what remains of its expiry.
    private static async Task MessageExpiry(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub", o => o.WithCleanStart(false).WithSessionExpiryInterval(600));
        await subscriber.SubscribeAsync($"{id}/t", MqttQualityOfServiceLevel.AtLeastOnce);
        await subscriber.DisconnectAsync();

        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync(Message($"{id}/t", "short", expiry: 1));
        await publisher.PublishAsync(Message($"{id}/t", "long", expiry: 60));
        var published = DateTimeOffset.UtcNow;
        await UntilAsync(published.AddSeconds(2.5), "the short expiry has passed");

        await subscriber.ReconnectAsync();
        var kept = await subscriber.WaitForMessageAsync(m => m.Payload == "long", Timeout);
        Assert.InRange(kept.MessageExpiryInterval, 1u, 58u);
        Assert.DoesNotContain(subscriber.ReceivedMessages, m => m.Payload == "short");
        await subscriber.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
    }

    private static async Task WillMessage(BrokerEndpoint broker, string id)
    {
        await using var observer = await Connect(broker, $"{id}-observer");
        await observer.SubscribeAsync($"{id}/will/#");

        await using var crashing = await Connect(broker, $"{id}-crash", o => Will(o, $"{id}/will/crash"));
        await crashing.DropConnectionAsync();
        await observer.WaitForMessageAsync($"{id}/will/crash", Timeout);

        // A normal DISCONNECT discards it.
        await using var polite = await Connect(broker, $"{id}-polite", o => Will(o, $"{id}/will/polite"));
        await polite.DisconnectAsync();
        await using var control = await Connect(broker, $"{id}-control", o => Will(o, $"{id}/will/control"));
        await control.DropConnectionAsync();
        await observer.WaitForMessageAsync($"{id}/will/control", Timeout);
        Assert.DoesNotContain(observer.ReceivedMessages, m => m.Topic == $"{id}/will/polite");
    }

    // DISCONNECT with reason 0x04 asks for the Will to be sent.
    private static async Task WillOnDisconnectWithWillMessage(BrokerEndpoint broker, string id)
    {
        await using var observer = await Connect(broker, $"{id}-observer");
        await observer.SubscribeAsync($"{id}/will");
        await using var client = await Connect(broker, $"{id}-client", o => Will(o, $"{id}/will"));
        await client.DisconnectWithWillAsync();
        await observer.WaitForMessageAsync($"{id}/will", Timeout);
    }

    // A client back within its Will Delay Interval is not reported gone; one that stays away is, after the delay.
    private static async Task WillDelay(BrokerEndpoint broker, string id)
    {
        await using var observer = await Connect(broker, $"{id}-observer");
        await observer.SubscribeAsync($"{id}/will/#");

        await using var returning = await Connect(broker, $"{id}-returning", o => Will(o, $"{id}/will/returning").WithWillDelayInterval(2)
            .WithCleanStart(false).WithSessionExpiryInterval(60));
        await returning.DropConnectionAsync();
        await returning.ReconnectAsync();

        await using var away = await Connect(broker, $"{id}-away", o => Will(o, $"{id}/will/away").WithWillDelayInterval(2)
            .WithCleanStart(false).WithSessionExpiryInterval(60));
        var dropped = DateTimeOffset.UtcNow;
        await away.DropConnectionAsync();
        var will = await observer.WaitForMessageAsync($"{id}/will/away", Timeout);
        Assert.True(will.ReceivedAt - dropped >= TimeSpan.FromSeconds(1.5), $"the Will waited for its delay (it came after {(will.ReceivedAt - dropped).TotalSeconds:0.00} s)");
        Assert.DoesNotContain(observer.ReceivedMessages, m => m.Topic == $"{id}/will/returning");

        await returning.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
    }

    // Another connection with the same client id takes over and starts clean: the session ends, and the first
    // connection's Will goes out.
    private static async Task WillOnSessionTakeover(BrokerEndpoint broker, string id)
    {
        await using var observer = await Connect(broker, $"{id}-observer");
        await observer.SubscribeAsync($"{id}/will");
        await using var first = await Connect(broker, $"{id}-device", o => Will(o, $"{id}/will").WithCleanStart(false).WithSessionExpiryInterval(60));
        await using var second = await Connect(broker, $"{id}-device", o => o.WithCleanStart(true));
        await observer.WaitForMessageAsync($"{id}/will", Timeout);
    }

    // A takeover that carries the session on is the client back (a half-open connection replaced): no Will.
    private static async Task NoWillWhenTakeoverResumesTheSession(BrokerEndpoint broker, string id)
    {
        await using var observer = await Connect(broker, $"{id}-observer");
        await observer.SubscribeAsync($"{id}/will/#");
        await using var first = await Connect(broker, $"{id}-device", o => Will(o, $"{id}/will/device").WithCleanStart(false).WithSessionExpiryInterval(60));
        await using var second = await Connect(broker, $"{id}-device", o => o.WithCleanStart(false).WithSessionExpiryInterval(60));
        await Eventually.UntilAsync(() => Task.FromResult(first.IsConnected), connected => !connected, Timeout, "the first connection is closed");
        await using var control = await Connect(broker, $"{id}-control", o => Will(o, $"{id}/will/control"));
        await control.DropConnectionAsync();
        await observer.WaitForMessageAsync($"{id}/will/control", Timeout);
        Assert.DoesNotContain(observer.ReceivedMessages, m => m.Topic == $"{id}/will/device");
        await second.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
    }

    // A client silent for 1.5 keep-alive periods is disconnected, and its Will sent.
    private static async Task KeepAlive(BrokerEndpoint broker, string id)
    {
        await using var observer = await Connect(broker, $"{id}-observer");
        await observer.SubscribeAsync($"{id}/will");
        await using var silent = await RawMqttConnection.OpenAsync(broker.Host, broker.Port);
        var (_, code) = await silent.ConnectAsync(RawMqttConnection.Connect5($"{id}-silent", cleanStart: true, keepAlive: 1, will: ($"{id}/will", "timed out")), Timeout);
        Assert.Equal(0, code);
        await observer.WaitForMessageAsync($"{id}/will", Timeout);
    }

    // MQTT 5: an empty client id gets one assigned, named in the CONNACK.
    private static async Task ZeroLengthClientId(BrokerEndpoint broker, string id)
    {
        await using var client = await Connect(broker, "");
        var assigned = client.ConnectResult!.AssignedClientIdentifier;
        Assert.False(string.IsNullOrEmpty(assigned), "an Assigned Client Identifier in the CONNACK");
        await client.SubscribeAsync($"{id}/echo");
        await client.PublishAsync($"{id}/echo", "works");
        await client.WaitForMessageAsync($"{id}/echo", Timeout);
    }

    // MQTT 3.1.1: an empty client id with a clean session is accepted (mosquitto_pub sends one).
    private static async Task ZeroLengthClientId311(BrokerEndpoint broker, string id)
    {
        await using var connection = await RawMqttConnection.OpenAsync(broker.Host, broker.Port);
        var (_, code) = await connection.ConnectAsync(RawMqttConnection.Connect311("", cleanSession: true), Timeout);
        Assert.Equal(0x00, code);
    }

    // MQTT 3.1.1: an empty client id without a clean session is answered "identifier rejected" [MQTT-3.1.3-8].
    private static async Task ZeroLengthClientId311WithoutCleanSession(BrokerEndpoint broker, string id)
    {
        await using var connection = await RawMqttConnection.OpenAsync(broker.Host, broker.Port);
        var (_, code) = await connection.ConnectAsync(RawMqttConnection.Connect311("", cleanSession: false), Timeout);
        Assert.Equal(0x02, code);
    }

    private static async Task OfflineMessageQueueing(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub", o => o.WithCleanStart(false).WithSessionExpiryInterval(600));
        await subscriber.SubscribeAsync($"{id}/t");
        await subscriber.DisconnectAsync();

        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/t", "qos1", MqttQualityOfServiceLevel.AtLeastOnce);
        await publisher.PublishAsync($"{id}/t", "qos2", MqttQualityOfServiceLevel.ExactlyOnce);

        var reconnect = await subscriber.ReconnectAsync();
        Assert.True(reconnect.IsSessionPresent);
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, (await subscriber.WaitForMessageAsync(m => m.Payload == "qos1", Timeout)).QualityOfService);
        Assert.Equal(MqttQualityOfServiceLevel.ExactlyOnce, (await subscriber.WaitForMessageAsync(m => m.Payload == "qos2", Timeout)).QualityOfService);
        await subscriber.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
    }

    // Messages sent but not acknowledged are sent again on the resumed session, marked as duplicates.
    private static async Task RedeliveryOnReconnect(BrokerEndpoint broker, string id)
    {
        var received = new List<string>();
        using (var forgetful = new MqttClientFactory().CreateMqttClient())
        {
            forgetful.ApplicationMessageReceivedAsync += e =>
            {
                e.AutoAcknowledge = false; // never acknowledged
                lock (received)
                {
                    received.Add(e.ApplicationMessage.ConvertPayloadToString());
                }

                return Task.CompletedTask;
            };
            await forgetful.ConnectAsync(Options(broker, $"{id}-sub").WithCleanStart(false).WithSessionExpiryInterval(600).Build());
            await forgetful.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
                .WithTopicFilter($"{id}/one", MqttQualityOfServiceLevel.AtLeastOnce)
                .WithTopicFilter($"{id}/two", MqttQualityOfServiceLevel.ExactlyOnce).Build());

            await using var publisher = await Connect(broker, $"{id}-pub");
            await publisher.PublishAsync($"{id}/one", "r1", MqttQualityOfServiceLevel.AtLeastOnce);
            await publisher.PublishAsync($"{id}/two", "r2", MqttQualityOfServiceLevel.ExactlyOnce);
            await Eventually.UntilAsync(() => Task.FromResult(Count(received)), n => n == 2, Timeout, "both arrive unacknowledged");
        }

        await using var back = await Connect(broker, $"{id}-sub", o => o.WithCleanStart(false).WithSessionExpiryInterval(600));
        var one = await back.WaitForMessageAsync(m => m.Payload == "r1", Timeout);
        var two = await back.WaitForMessageAsync(m => m.Payload == "r2", Timeout);
        Assert.True(one.Dup && two.Dup, "sent again with the DUP flag");
        await back.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
    }

    private static async Task Qos2ExactlyOnce(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.SubscribeAsync($"{id}/t");
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/t", "once", MqttQualityOfServiceLevel.ExactlyOnce);
        await publisher.PublishAsync($"{id}/t", "barrier", MqttQualityOfServiceLevel.ExactlyOnce);
        await subscriber.WaitForMessageAsync(m => m.Payload == "barrier", Timeout);
        Assert.Single(subscriber.ReceivedMessages, m => m.Payload == "once" && m.QualityOfService == MqttQualityOfServiceLevel.ExactlyOnce);
    }

    // A QoS 2 PUBLISH sent again after a reconnect (its PUBREC lost) is delivered once [MQTT-4.3.3-10].
    private static async Task Qos2ResentPublishIsDeliveredOnce(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.SubscribeAsync($"{id}/t");
        await using (var first = await RawMqttConnection.OpenAsync(broker.Host, broker.Port))
        {
            Assert.Equal(0, (await first.ConnectAsync(RawMqttConnection.Connect5($"{id}-pub", cleanStart: true, sessionExpiry: 60), Timeout)).Code);
            await first.SendAsync(RawMqttConnection.PublishQos2($"{id}/t", "once", packetId: 7, dup: false));
            Assert.Equal(5, (await first.ReceiveAsync(Timeout))![0] >> 4); // PUBREC, which the publisher then "loses"
        }

        await using var again = await RawMqttConnection.OpenAsync(broker.Host, broker.Port);
        Assert.True((await again.ConnectAsync(RawMqttConnection.Connect5($"{id}-pub", cleanStart: false, sessionExpiry: 60), Timeout)).SessionPresent);
        await again.SendAsync(RawMqttConnection.PublishQos2($"{id}/t", "once", packetId: 7, dup: true));
        Assert.Equal(5, (await again.ReceiveAsync(Timeout))![0] >> 4);
        await again.SendAsync(RawMqttConnection.PubRel(7));
        Assert.Equal(7, (await again.ReceiveAsync(Timeout))![0] >> 4); // PUBCOMP
        await again.SendAsync(RawMqttConnection.PublishQos2($"{id}/t", "barrier", packetId: 8, dup: false));
        await again.ReceiveAsync(Timeout);
        await again.SendAsync(RawMqttConnection.PubRel(8));
        await subscriber.WaitForMessageAsync(m => m.Payload == "barrier", Timeout);
        Assert.Single(subscriber.ReceivedMessages, m => m.Payload == "once");
        await again.SendAsync(RawMqttConnection.Disconnect5(sessionExpiry: 0));
    }

    // Two subscriptions match: the message comes with the highest QoS granted (once, or once per subscription).
    private static async Task OverlappingSubscriptions(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.SubscribeAsync($"{id}/#", MqttQualityOfServiceLevel.ExactlyOnce);
        await subscriber.SubscribeAsync($"{id}/+", MqttQualityOfServiceLevel.AtLeastOnce);
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/x", "both", MqttQualityOfServiceLevel.ExactlyOnce);
        await subscriber.WaitForMessageAsync(m => m.Payload == "both" && m.QualityOfService == MqttQualityOfServiceLevel.ExactlyOnce, Timeout);
    }

    // "#" does not match topics that start with "$".
    private static async Task DollarTopics(BrokerEndpoint broker, string id)
    {
        await using var everything = await Connect(broker, $"{id}-all");
        await everything.SubscribeAsync("#", MqttQualityOfServiceLevel.AtLeastOnce);
        await using var dollar = await Connect(broker, $"{id}-dollar");
        await dollar.SubscribeAsync($"$conformance/{id}", MqttQualityOfServiceLevel.AtLeastOnce);
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"$conformance/{id}", "hidden", MqttQualityOfServiceLevel.AtLeastOnce);
        await publisher.PublishAsync($"{id}/visible", "shown", MqttQualityOfServiceLevel.AtLeastOnce);
        await dollar.WaitForMessageAsync($"$conformance/{id}", Timeout);
        await everything.WaitForMessageAsync($"{id}/visible", Timeout);
        Assert.DoesNotContain(everything.ReceivedMessages, m => m.Topic.StartsWith('$'));
    }

    private static async Task Unsubscribe(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.SubscribeAsync($"{id}/a", MqttQualityOfServiceLevel.AtLeastOnce);
        await subscriber.SubscribeAsync($"{id}/b", MqttQualityOfServiceLevel.AtLeastOnce);
        await subscriber.Client.UnsubscribeAsync($"{id}/a");
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/a", "gone", MqttQualityOfServiceLevel.AtLeastOnce);
        await publisher.PublishAsync($"{id}/b", "here", MqttQualityOfServiceLevel.AtLeastOnce);
        await subscriber.WaitForMessageAsync($"{id}/b", Timeout);
        Assert.DoesNotContain(subscriber.ReceivedMessages, m => m.Topic == $"{id}/a");
    }

    // The CONNECT's Session Expiry Interval: 1 s is over after 2.5 s, 600 s is not.
    private static async Task SessionExpiry(BrokerEndpoint broker, string id)
    {
        await using var brief = await Connect(broker, $"{id}-brief", o => o.WithCleanStart(false).WithSessionExpiryInterval(1));
        await brief.SubscribeAsync($"{id}/t");
        await brief.DisconnectAsync();
        await using var lasting = await Connect(broker, $"{id}-lasting", o => o.WithCleanStart(false).WithSessionExpiryInterval(600));
        await lasting.SubscribeAsync($"{id}/t");
        await lasting.DisconnectAsync();
        await UntilAsync(DateTimeOffset.UtcNow.AddSeconds(2.5), "the short session expiry has passed");

        Assert.False((await brief.ReconnectAsync()).IsSessionPresent, "a session expires after its interval");
        Assert.True((await lasting.ReconnectAsync()).IsSessionPresent, "a session lasts its interval");
        await lasting.Client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithSessionExpiryInterval(0).Build());
    }

    // DISCONNECT with a Session Expiry Interval of 0 ends the session at once [MQTT-3.1.2-23, 3.14.2.2.2].
    private static async Task SessionExpiryZeroOnDisconnect(BrokerEndpoint broker, string id)
    {
        await using (var connection = await RawMqttConnection.OpenAsync(broker.Host, broker.Port))
        {
            Assert.Equal(0, (await connection.ConnectAsync(RawMqttConnection.Connect5($"{id}-c", cleanStart: true, sessionExpiry: 600), Timeout)).Code);
            await connection.SendAsync(RawMqttConnection.Disconnect5(sessionExpiry: 0));
            Assert.Null(await connection.ReceiveAsync(Timeout)); // the broker closes the connection
        }

        await using var again = await RawMqttConnection.OpenAsync(broker.Host, broker.Port);
        var (present, code) = await again.ConnectAsync(RawMqttConnection.Connect5($"{id}-c", cleanStart: false, sessionExpiry: 600), Timeout);
        Assert.Equal(0, code);
        Assert.False(present, "the session ended with the DISCONNECT");
        await again.SendAsync(RawMqttConnection.Disconnect5(sessionExpiry: 0));
    }

    // DISCONNECT may also lengthen the session (the CONNECT's was not 0).
    private static async Task SessionExpiryRaisedOnDisconnect(BrokerEndpoint broker, string id)
    {
        await using (var connection = await RawMqttConnection.OpenAsync(broker.Host, broker.Port))
        {
            Assert.Equal(0, (await connection.ConnectAsync(RawMqttConnection.Connect5($"{id}-c", cleanStart: true, sessionExpiry: 1), Timeout)).Code);
            await connection.SendAsync(RawMqttConnection.Disconnect5(sessionExpiry: 600));
            Assert.Null(await connection.ReceiveAsync(Timeout));
        }

        await UntilAsync(DateTimeOffset.UtcNow.AddSeconds(2.5), "the CONNECT's expiry has passed");
        await using var again = await RawMqttConnection.OpenAsync(broker.Host, broker.Port);
        var (present, code) = await again.ConnectAsync(RawMqttConnection.Connect5($"{id}-c", cleanStart: false, sessionExpiry: 600), Timeout);
        Assert.Equal(0, code);
        Assert.True(present, "the DISCONNECT's longer expiry applies");
        await again.SendAsync(RawMqttConnection.Disconnect5(sessionExpiry: 0));
    }

    private static async Task UserProperties(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.SubscribeAsync($"{id}/t");
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{id}/t").WithPayload("p")
            .WithUserProperty("a", Bytes("1")).WithUserProperty("b", Bytes("2")).WithUserProperty("a", Bytes("3")).Build());
        var message = await subscriber.WaitForMessageAsync($"{id}/t", Timeout);
        Assert.Equal([new("a", "1"), new("b", "2"), new("a", "3")], message.UserProperties);
    }

    private static async Task PayloadFormatAndRequestResponse(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.SubscribeAsync($"{id}/request");
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{id}/request").WithPayload("text")
            .WithPayloadFormatIndicator(MqttPayloadFormatIndicator.CharacterData).WithContentType("text/plain")
            .WithResponseTopic($"{id}/response").WithCorrelationData([9, 8, 7]).Build());
        var message = await subscriber.WaitForMessageAsync($"{id}/request", Timeout);
        Assert.Equal(MqttPayloadFormatIndicator.CharacterData, message.PayloadFormat);
        Assert.Equal("text/plain", message.ContentType);
        Assert.Equal($"{id}/response", message.ResponseTopic);
        Assert.Equal([9, 8, 7], message.CorrelationData);
    }

    private static async Task SubscribeOptionsNoLocal(BrokerEndpoint broker, string id)
    {
        await using var client = await Connect(broker, $"{id}-client");
        await client.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic($"{id}/own").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithNoLocal()).Build());
        await client.SubscribeAsync($"{id}/barrier", MqttQualityOfServiceLevel.AtLeastOnce);
        await client.PublishAsync($"{id}/own", "mine", MqttQualityOfServiceLevel.AtLeastOnce);
        await client.PublishAsync($"{id}/barrier", "b", MqttQualityOfServiceLevel.AtLeastOnce);
        await client.WaitForMessageAsync($"{id}/barrier", Timeout);
        Assert.DoesNotContain(client.ReceivedMessages, m => m.Topic == $"{id}/own");
    }

    private static async Task SubscribeOptionsRetainAsPublished(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic($"{id}/kept").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).WithRetainAsPublished())
            .WithTopicFilter(f => f.WithTopic($"{id}/plain").WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)).Build());
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/kept", "k", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        await publisher.PublishAsync($"{id}/plain", "p", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        Assert.True((await subscriber.WaitForMessageAsync($"{id}/kept", Timeout)).Retain, "Retain As Published keeps the flag");
        Assert.False((await subscriber.WaitForMessageAsync($"{id}/plain", Timeout)).Retain, "a live message otherwise carries none");
        await publisher.PublishAsync($"{id}/kept", "", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        await publisher.PublishAsync($"{id}/plain", "", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
    }

    private static async Task SubscribeOptionsRetainHandling(BrokerEndpoint broker, string id)
    {
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/state", "kept", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        await publisher.PublishAsync($"{id}/marker", "m", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);

        await using var never = await Connect(broker, $"{id}-never");
        await never.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(f => f.WithTopic($"{id}/state").WithRetainHandling(MqttRetainHandling.DoNotSendOnSubscribe)).Build());
        await never.SubscribeAsync($"{id}/marker");
        await never.WaitForMessageAsync($"{id}/marker", Timeout);
        Assert.DoesNotContain(never.ReceivedMessages, m => m.Topic == $"{id}/state");

        await using var once = await Connect(broker, $"{id}-once");
        for (var i = 0; i < 2; i++)
        {
            await once.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder()
                .WithTopicFilter(f => f.WithTopic($"{id}/state").WithRetainHandling(MqttRetainHandling.SendAtSubscribeIfNewSubscriptionOnly)).Build());
        }

        await once.SubscribeAsync($"{id}/marker");
        await once.WaitForMessageAsync($"{id}/marker", Timeout);
        Assert.Single(once.ReceivedMessages, m => m.Topic == $"{id}/state");
        await publisher.PublishAsync($"{id}/state", "", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
        await publisher.PublishAsync($"{id}/marker", "", MqttQualityOfServiceLevel.AtLeastOnce, retain: true);
    }

    private static async Task SubscribeIdentifiers(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithSubscriptionIdentifier(7)
            .WithTopicFilter($"{id}/a", MqttQualityOfServiceLevel.AtLeastOnce).Build());
        await subscriber.Client.SubscribeAsync(new MqttClientSubscribeOptionsBuilder().WithSubscriptionIdentifier(9)
            .WithTopicFilter($"{id}/+", MqttQualityOfServiceLevel.AtLeastOnce).Build());
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/a", "both", MqttQualityOfServiceLevel.AtLeastOnce);
        await publisher.PublishAsync($"{id}/b", "wildcard", MqttQualityOfServiceLevel.AtLeastOnce);
        await subscriber.WaitForMessageAsync($"{id}/b", Timeout);
        Assert.Equal([7u, 9u], subscriber.ReceivedMessages.Where(m => m.Topic == $"{id}/a").SelectMany(m => m.SubscriptionIdentifiers).Order());
        Assert.Equal([9u], subscriber.ReceivedMessages.Single(m => m.Topic == $"{id}/b").SubscriptionIdentifiers);
    }

    private static async Task ClientTopicAlias(BrokerEndpoint broker, string id)
    {
        await using var subscriber = await Connect(broker, $"{id}-sub");
        await subscriber.SubscribeAsync($"{id}/aliased");
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic($"{id}/aliased").WithTopicAlias(1).WithPayload("first").Build());
        await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic("").WithTopicAlias(1).WithPayload("second").Build());
        await subscriber.WaitForMessagesAsync(m => m.Topic == $"{id}/aliased", 2, Timeout);
    }

    // A message larger than the client's Maximum Packet Size is not sent to it [MQTT-3.1.2-24].
    private static async Task MaximumPacketSize(BrokerEndpoint broker, string id)
    {
        await using var small = await Connect(broker, $"{id}-small", o => o.WithMaximumPacketSize(256));
        await small.SubscribeAsync($"{id}/t", MqttQualityOfServiceLevel.AtLeastOnce);
        await using var publisher = await Connect(broker, $"{id}-pub");
        await publisher.PublishAsync($"{id}/t", new string('x', 1000), MqttQualityOfServiceLevel.AtLeastOnce);
        await publisher.PublishAsync($"{id}/t", "fits", MqttQualityOfServiceLevel.AtLeastOnce);
        await small.WaitForMessageAsync(m => m.Payload == "fits", Timeout);
        Assert.Single(small.ReceivedMessages);
    }

    // A client with Receive Maximum 2 never has more than 2 QoS 1 messages awaiting its acknowledgement.
    private static async Task FlowControl(BrokerEndpoint broker, string id)
    {
        var pending = new List<MqttApplicationMessageReceivedEventArgs>();
        using var limited = new MqttClientFactory().CreateMqttClient();
        limited.ApplicationMessageReceivedAsync += e =>
        {
            e.AutoAcknowledge = false;
            lock (pending)
            {
                pending.Add(e);
            }

            return Task.CompletedTask;
        };
        await limited.ConnectAsync(Options(broker, $"{id}-limited").WithReceiveMaximum(2).Build());
        await limited.SubscribeAsync($"{id}/t", MqttQualityOfServiceLevel.AtLeastOnce);
        await using var observer = await Connect(broker, $"{id}-observer");
        await observer.SubscribeAsync($"{id}/#", MqttQualityOfServiceLevel.AtLeastOnce);

        await using var publisher = await Connect(broker, $"{id}-pub");
        for (var i = 0; i < 10; i++)
        {
            await publisher.PublishAsync($"{id}/t", $"m{i}", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        // The observer has all ten and a later marker: the broker has sent whatever it was going to send.
        await publisher.PublishAsync($"{id}/marker", "done", MqttQualityOfServiceLevel.AtLeastOnce);
        await observer.WaitForMessageAsync($"{id}/marker", Timeout);
        await limited.PingAsync();
        Assert.Equal(2, Count(pending));

        for (var acknowledged = 0; acknowledged < 10; acknowledged++)
        {
            MqttApplicationMessageReceivedEventArgs next;
            lock (pending)
            {
                next = pending[acknowledged];
            }

            await next.AcknowledgeAsync(CancellationToken.None);
            var expected = Math.Min(10, acknowledged + 3);
            var count = await Eventually.UntilAsync(() => Task.FromResult(Count(pending)), n => n >= expected, Timeout, $"message {expected} arrives");
            Assert.True(count - (acknowledged + 1) <= 2, $"{count - (acknowledged + 1)} unacknowledged after {acknowledged + 1} acknowledgements");
        }

        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"m{i}"), pending.Select(e => e.ApplicationMessage.ConvertPayloadToString()));
        await limited.DisconnectAsync();
    }

    private static async Task SharedSubscriptions(BrokerEndpoint broker, string id)
    {
        await using var first = await Connect(broker, $"{id}-first");
        await first.SubscribeAsync($"$share/{id}/{id}/t", MqttQualityOfServiceLevel.AtLeastOnce);
        await using var second = await Connect(broker, $"{id}-second");
        await second.SubscribeAsync($"$share/{id}/{id}/t", MqttQualityOfServiceLevel.AtLeastOnce);
        await using var publisher = await Connect(broker, $"{id}-pub");
        for (var i = 0; i < 10; i++)
        {
            await publisher.PublishAsync($"{id}/t", $"m{i}", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        await Eventually.UntilAsync(() => Task.FromResult(first.ReceivedMessages.Count + second.ReceivedMessages.Count), n => n >= 10, Timeout,
            "the group receives every message");
        Assert.Equal(10, first.ReceivedMessages.Concat(second.ReceivedMessages).Select(m => m.Payload).Distinct().Count());
        Assert.Equal(10, first.ReceivedMessages.Count + second.ReceivedMessages.Count);
    }

    private static Task<TestMqttClient> Connect(BrokerEndpoint broker, string clientId, Action<MqttClientOptionsBuilder>? configure = null) =>
        TestMqttClient.ConnectAsync(broker.Host, broker.Port, clientId, configure);

    private static MqttClientOptionsBuilder Options(BrokerEndpoint broker, string clientId) => new MqttClientOptionsBuilder()
        .WithTcpServer(broker.Host, broker.Port).WithClientId(clientId).WithProtocolVersion(MqttProtocolVersion.V500).WithTimeout(Timeout);

    private static MqttClientOptionsBuilder Will(MqttClientOptionsBuilder options, string topic) => options
        .WithWillTopic(topic).WithWillPayload("gone").WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce);

    private static MqttApplicationMessage Message(string topic, string payload, bool retain = false, uint expiry = 0) =>
        new MqttApplicationMessageBuilder().WithTopic(topic).WithPayload(payload).WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .WithRetainFlag(retain).WithMessageExpiryInterval(expiry).Build();

    private static ReadOnlyMemory<byte> Bytes(string text) => Encoding.UTF8.GetBytes(text);

    // Subscribes to a topic, then to one that has a retained marker: its retained messages come in that order, so
    // once the marker is in, the first subscription has sent whatever it was going to.
    private static async Task SubscribeThenRetainedBarrierAsync(TestMqttClient client, string topic, string marker)
    {
        await client.SubscribeAsync(topic);
        await client.SubscribeAsync(marker);
        await client.WaitForMessageAsync(marker, Timeout);
    }

    // Real time has to pass for an expiry; this waits for the moment with a deadline, polling.
    private static Task UntilAsync(DateTimeOffset moment, string because) =>
        Eventually.UntilAsync(() => Task.FromResult(DateTimeOffset.UtcNow >= moment), reached => reached, moment - DateTimeOffset.UtcNow + Timeout, because);

    private static int Count<T>(List<T> list)
    {
        lock (list)
        {
            return list.Count;
        }
    }
}
