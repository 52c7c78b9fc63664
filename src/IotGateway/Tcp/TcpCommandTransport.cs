using System.Net.Sockets;
using IotGateway.Commands;
using IotGateway.Devices;

namespace IotGateway.Tcp;

// Writes a TCP device's commands to its connection, the article's way: one command per write, the next only once
// the device answered the previous one (or Tcp:AnswerTimeoutSeconds passed), since the article's device parses each
// chunk it reads as one command. Written to the socket is Published. A device that is not connected here, or still has
// time to answer its last command, is Away: its commands stay Pending, and this transport says when it can take the
// next (its committed sign-in; the answer or its timeout).
public sealed partial class TcpCommandTransport : ICommandTransport
{
    private readonly TcpDevices _devices;
    private readonly CommandCompletion _completion;
    private readonly TimeSpan _answerTimeout;
    private readonly ILogger<TcpCommandTransport> _logger;

    public TcpCommandTransport(TcpDevices devices, DeviceRegistry registry, CommandCompletion completion, IOptions<TcpOptions> options,
        ILogger<TcpCommandTransport> logger)
    {
        _devices = devices;
        _completion = completion;
        _answerTimeout = TimeSpan.FromSeconds(options.Value.AnswerTimeoutSeconds);
        _logger = logger;
        registry.TcpDeviceSignedIn += deviceId =>
        {
            if (_devices.TryGet(deviceId, out _))
            {
                DeviceReachable?.Invoke(deviceId);
            }
        };
    }

    public event Action<string>? DeviceReachable;

    public async Task<SendResult> SendAsync(Command command, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!_devices.TryGet(command.DeviceId, out var connection))
        {
            return SendResult.Away;
        }

        switch (connection.NextCommand(() => DeviceReachable?.Invoke(command.DeviceId)))
        {
            case NextCommand.Wait:
                // The lane ends instead of holding a publishing slot; it runs again when the answer comes or times out.
                return SendResult.Away;
            case NextCommand.GoAfterTimeout:
                LogNoAnswer(command.DeviceId, _answerTimeout.TotalSeconds);
                break;
        }

        try
        {
            await connection.WriteCommandAsync(MqttCommandTransport.RequestPayload(command), _completion.Register(command.Id), _answerTimeout, cancellationToken);
            LogWritten(command.Id, command.DeviceId, command.Name);
            return SendResult.Sent;
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // The connection ended under it: the command stays Pending for the device's next connection.
            LogWriteFailed(command.Id, command.DeviceId, ex.Message);
            return SendResult.Away;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Command {CommandId} written to TCP device {DeviceId}: {Command}")]
    private partial void LogWritten(Guid commandId, string deviceId, string command);

    [LoggerMessage(Level = LogLevel.Information, Message = "TCP device {DeviceId} did not answer its last command within {Seconds} s; writing the next")]
    private partial void LogNoAnswer(string deviceId, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Command {CommandId} for TCP device {DeviceId} stays Pending: {Reason}")]
    private partial void LogWriteFailed(Guid commandId, string deviceId, string reason);
}
