using System.Buffers;
using IotGateway.Mqtt.Embedded;
using MQTTnet.Packets;

namespace IotGateway.Tests.Mqtt;

// The embedded broker's own pieces that need no broker to test: the raw packet bytes it reads where MQTTnet's
// decoding loses the difference, the tag that ties MQTTnet's packets to deliveries, and the write-behind journal.
public sealed class EmbeddedBrokerPartsTests
{
    [Fact]
    public void DisconnectSessionExpiryTellsAbsentFromZero()
    {
        Assert.Null(RawPackets.DisconnectSessionExpiry(RawMqttConnection.Disconnect5(sessionExpiry: null)));
        Assert.Equal(0u, RawPackets.DisconnectSessionExpiry(RawMqttConnection.Disconnect5(sessionExpiry: 0)));
        Assert.Equal(3600u, RawPackets.DisconnectSessionExpiry(RawMqttConnection.Disconnect5(sessionExpiry: 3600)));
        Assert.Null(RawPackets.DisconnectSessionExpiry([0xE0, 0x00])); // no reason code, no properties
        // After a reason string and a user property.
        byte[] properties = [0x1F, 0, 2, (byte)'o', (byte)'k', 0x26, 0, 1, (byte)'k', 0, 1, (byte)'v', 0x11, 0, 0, 0, 7];
        Assert.Equal(7u, RawPackets.DisconnectSessionExpiry([0xE0, (byte)(2 + properties.Length), 0x04, (byte)properties.Length, .. properties]));
        Assert.True(RawPackets.IsDisconnect(RawMqttConnection.Disconnect5(null)));
        Assert.False(RawPackets.IsDisconnect(RawMqttConnection.Connect5("c", cleanStart: true)));
    }

    [Fact]
    public void AnMqtt311ConnectWithAnEmptyIdAndNoCleanSessionIsRecognised()
    {
        Assert.True(RawPackets.IsMqtt311ConnectWithEmptyIdAndNoCleanSession(RawMqttConnection.Connect311("", cleanSession: false)));
        Assert.False(RawPackets.IsMqtt311ConnectWithEmptyIdAndNoCleanSession(RawMqttConnection.Connect311("", cleanSession: true)));
        Assert.False(RawPackets.IsMqtt311ConnectWithEmptyIdAndNoCleanSession(RawMqttConnection.Connect311("device", cleanSession: false)));
        Assert.False(RawPackets.IsMqtt311ConnectWithEmptyIdAndNoCleanSession(RawMqttConnection.Connect5("", cleanStart: false)));
        Assert.False(RawPackets.IsMqtt311ConnectWithEmptyIdAndNoCleanSession(null));
        Assert.False(RawPackets.IsMqtt311ConnectWithEmptyIdAndNoCleanSession([0x10, 0x05, 0x00]));
    }

    [Fact]
    public void TheDeliveryTagIsTakenOutOfThePacketAndGivesTheDelivery()
    {
        var now = DateTimeOffset.UtcNow;
        var delivery = new Delivery
        {
            Id = 4711,
            Topic = "t",
            Payload = new ReadOnlySequence<byte>("p"u8.ToArray()),
            Qos = MqttQualityOfServiceLevel.AtLeastOnce,
            Retain = false,
            ExpiresAt = now.AddSeconds(9.2),
            Properties = new ForwardedProperties(null, null, null, MqttPayloadFormatIndicator.Unspecified, [new MqttUserProperty("own", "x"u8.ToArray().AsMemory())]),
        };

        var message = delivery.ToApplicationMessage(now, tagged: true);
        Assert.Equal(10u, message.MessageExpiryInterval); // what remains, rounded up
        var packet = new MqttPublishPacket { Topic = message.Topic, UserProperties = message.UserProperties };
        Assert.Equal(4711, IotGateway.Mqtt.Embedded.Delivery.TakeTag(packet));
        Assert.Equal(["own"], packet.UserProperties!.Select(p => p.Name));
        Assert.Null(IotGateway.Mqtt.Embedded.Delivery.TakeTag(packet));
        Assert.Single(delivery.Properties.UserProperties!); // the delivery's own list is untouched
    }

    [Fact]
    public void TheJournalWritesOnlyWhatOutlivesTheInterval()
    {
        var journal = new SessionJournal();
        var acknowledgedInTime = NewDelivery(journal);
        var waiting = NewDelivery(journal);
        journal.Added("device", acknowledgedInTime);
        journal.Added("device", waiting);
        journal.Removed(acknowledgedInTime);
        var first = journal.Take();
        Assert.Equal([waiting.Id], first.Added.Keys);
        Assert.Empty(first.Removed);

        // The write failed; meanwhile the waiting one was delivered: neither is written.
        journal.Removed(waiting);
        journal.PutBack(first);
        var second = journal.Take();
        Assert.Empty(second.Added);
        Assert.Empty(second.Removed);

        // Once written, its removal is written too.
        journal.Removed(NewDelivery(journal, id: 99));
        Assert.Equal([99L], journal.Take().Removed);
    }

    [Fact]
    public void ASessionThatEndsTakesItsUnwrittenMessagesWithIt()
    {
        var journal = new SessionJournal();
        journal.Added("gone", NewDelivery(journal));
        journal.Added("kept", NewDelivery(journal));
        journal.Cleared("gone");
        var changes = journal.Take();
        Assert.Equal(["kept"], changes.Added.Values.Select(a => a.ClientId));
        Assert.Equal(["gone"], changes.Cleared);
        Assert.Contains("gone", changes.Changed); // written again if the client has a new session by then
    }

    private static Delivery NewDelivery(SessionJournal journal, long? id = null) => new()
    {
        Id = id ?? journal.NextDeliveryId(),
        Topic = "t",
        Payload = ReadOnlySequence<byte>.Empty,
        Qos = MqttQualityOfServiceLevel.AtLeastOnce,
        Retain = false,
    };
}
