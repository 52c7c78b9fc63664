using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;
using DeviceSimulator.Devices;
using IotGateway.Protocol;

namespace DeviceSimulator.Commands;

// What a device does with a command, whatever carried it (MQTT or TCP): read, executed at most once per uuid, logged
// the article's way, and answered. QoS 2 is exactly-once only while a connection lives, and a gateway may write a TCP
// command again after its answer timeout: a command that comes again is answered again with the remembered outcome,
// never executed twice, and never reboots the device twice.
internal sealed class CommandRunner(string deviceId, ICommandTarget device, DeviceLog log)
{
    // Created at the first command: a fleet of devices that never get one allocates nothing for it.
    private ExecutedCommands? _executed;

    // False (logged) when the payload is not a command: dropped, as it never will be one. The caller disposes the request.
    public bool TryRun(ReadOnlySequence<byte> payload, [NotNullWhen(true)] out CommandRequest? request, [NotNullWhen(true)] out CommandOutcome? outcome)
    {
        outcome = null;
        if (log.EachMessage)
        {
            log.Step($"RECEIVED COMMAND: {Encoding.UTF8.GetString(payload)}");
        }

        if (!CommandRequest.TryParse(payload, out request, out var problem))
        {
            var text = Encoding.UTF8.GetString(payload);
            log.Problem($"IGNORING MALFORMED COMMAND \"{(text.Length <= 200 ? text : text[..200] + "…")}\": {problem}");
            return false;
        }

        if (_executed?.TryGet(request.Uuid, out var remembered) == true)
        {
            log.Step($"COMMAND {request.Uuid} ALREADY EXECUTED: ANSWERING AGAIN WITHOUT RUNNING IT");
            outcome = remembered with { RebootAfterAnswer = false };
        }
        else
        {
            outcome = DeviceCommands.Execute(request, device);
            (_executed ??= new ExecutedCommands()).Add(request.Uuid, outcome);
        }

        return true;
    }

    // The answer's bytes (the article's commandResp), logged when each message is.
    public byte[] Answer(CommandRequest request, CommandOutcome outcome)
    {
        var response = CommandResponse.ToJson(deviceId, outcome.Result, request);
        if (log.EachMessage)
        {
            log.Step($"SENDING COMMAND RESPONSE {Encoding.UTF8.GetString(response)}");
        }

        return response;
    }
}
