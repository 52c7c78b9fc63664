using IotGateway.Mqtt;
using IotGateway.Protocol;
using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Commands;

public enum SendResult
{
    // Handed to the device's transport (for MQTT: the broker completed the QoS 2 flow).
    Sent,

    // The transport cannot take it now (not connected): it stays Pending and goes out after the next scan.
    Unavailable,

    // Refused or failed: it stays Pending, and the dispatcher backs off before it tries again.
    Failed,

    // The device itself cannot take it now (a TCP device that is not connected, or still has time to answer its last
    // command): it stays Pending, the lane ends, and the transport raises DeviceReachable when the device can.
    Away,
}

// How a lane hands a command to its device: through the broker, or over a TCP device's own connection (CommandRouter
// chooses per device).
public interface ICommandTransport
{
    Task<SendResult> SendAsync(Command command, DateTimeOffset now, CancellationToken cancellationToken);

    // A device this transport answered Away for can be reached now: its lane runs again.
    event Action<string>? DeviceReachable;
}

// A TCP device's commands go to its connection; every other device's through the broker. A TCP device is never
// published to over MQTT, even while it is away: nothing there would read it.
public sealed class CommandRouter(MqttCommandTransport mqtt, Tcp.TcpCommandTransport tcp, Devices.DeviceRegistry registry) : ICommandTransport
{
    public Task<SendResult> SendAsync(Command command, DateTimeOffset now, CancellationToken cancellationToken) =>
        registry.IsTcp(command.DeviceId) ? tcp.SendAsync(command, now, cancellationToken) : mqtt.SendAsync(command, now, cancellationToken);

    public event Action<string>? DeviceReachable
    {
        add => tcp.DeviceReachable += value;
        remove => tcp.DeviceReachable -= value;
    }
}

// Publishes a command at QoS 2 on {CommandRequest}/{deviceId}, with the MQTT 5 message expiry set to what is left of its TTL.
public sealed partial class MqttCommandTransport(MqttConnection connection, TopicLayout topics, IOptions<MqttOptions> options,
    ILogger<MqttCommandTransport> logger) : ICommandTransport
{
    // The broker holds what a device's session has not taken yet: an MQTT device is never away.
    public event Action<string>? DeviceReachable
    {
        add { }
        remove { }
    }

    private readonly bool _mqtt5 = options.Value.UsesMqtt5;

    public async Task<SendResult> SendAsync(Command command, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!connection.IsConnected)
        {
            return SendResult.Unavailable;
        }

        var builder = new MqttApplicationMessageBuilder()
            .WithTopic(topics.CommandRequest(command.DeviceId))
            .WithPayload(RequestPayload(command))
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce);
        if (_mqtt5)
        {
            // The broker drops it when the TTL runs out, so a device that returns late does not act on it.
            // Rounded down: the broker never keeps it longer than the gateway waits for it (1 s at the least).
            var remaining = (uint)Math.Max(1, Math.Floor((command.ExpiresAt - now).TotalSeconds));
            builder.WithMessageExpiryInterval(remaining).WithContentType("application/json");
        }

        try
        {
            var result = await connection.PublishAsync(builder.Build(), cancellationToken);
            if (result.ReasonCode == MqttClientPublishReasonCode.NoMatchingSubscribers)
            {
                LogNoSubscriber(command.Id, command.DeviceId);
                return SendResult.Sent;
            }

            if (!result.IsSuccess)
            {
                LogPublishRefused(command.Id, command.DeviceId, result.ReasonCode, result.ReasonString);
                return SendResult.Failed;
            }

            LogPublished(command.Id, command.DeviceId, command.Name);
            return SendResult.Sent;
        }
        catch (Exception ex)
        {
            // Not connected, the connection dropped mid-flow, or stopping: it stays Pending and goes out later.
            if (!cancellationToken.IsCancellationRequested)
            {
                LogPublishFailed(command.Id, command.DeviceId, ex.GetBaseException().Message);
            }

            return connection.IsConnected ? SendResult.Failed : SendResult.Unavailable;
        }
    }

    internal static byte[] RequestPayload(Command command) => CommandRequest.ToJson(command.Id.ToString(), command.Name, command.Payload);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Command {CommandId} published to {DeviceId}: {Command}")]
    private partial void LogPublished(Guid commandId, string deviceId, string command);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Command {CommandId} published but no session subscribes to {DeviceId}'s command topic; it expires unless the device subscribes")]
    private partial void LogNoSubscriber(Guid commandId, string deviceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broker refused command {CommandId} for {DeviceId}: {ReasonCode} {ReasonString}")]
    private partial void LogPublishRefused(Guid commandId, string deviceId, MqttClientPublishReasonCode reasonCode, string? reasonString);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Command {CommandId} for {DeviceId} stays Pending: {Reason}")]
    private partial void LogPublishFailed(Guid commandId, string deviceId, string reason);
}
