using System.Text.Json.Nodes;
using DeviceSimulator.Commands;
using IotGateway.Protocol;
using MQTTnet;
using MQTTnet.Formatter;

namespace DeviceSimulator.Devices;

// Commands: answered from the MQTT client's receive loop, at most once per uuid.
internal sealed partial class SimulatedDevice
{
    // Runs on the MQTT client's receive loop, one message at a time; answering is one publish, so it stays short.
    private async Task OnMessageAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        if (!_commands.TryEnter())
        {
            e.AutoAcknowledge = false;   // not acknowledged: the broker delivers it again at the next connection
            return;
        }

        try
        {
            await HandleCommandAsync(e).ConfigureAwait(false);
        }
        finally
        {
            _commands.Leave();
        }
    }

    private async Task HandleCommandAsync(MqttApplicationMessageReceivedEventArgs e)
    {
        if (!_runner.TryRun(e.ApplicationMessage.Payload, out var request, out var outcome))
        {
            // Acknowledged and dropped: a payload that cannot be read now never will be.
            return;
        }

        using (request)
        {
            if (outcome.RebootAfterAnswer)
            {
                _commands.Close();   // a rebooting device takes no further command; they wait in the session
            }

            if (!await TryAnswerAsync(request, outcome).ConfigureAwait(false))
            {
                // Not acknowledged, so the broker delivers it again at the next connection and it is answered then.
                e.AutoAcknowledge = false;
                return;
            }

            if (outcome.RebootAfterAnswer)
            {
                // Acknowledged before the connection drops, or the broker would deliver REBOOT again after the reboot.
                e.AutoAcknowledge = false;
                try
                {
                    await e.AcknowledgeAsync(CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception ex)
                {
                    _log.Step($"COULD NOT ACKNOWLEDGE REBOOT, IT WILL COME AGAIN: {ex.GetBaseException().Message}");
                    return;
                }

                _rebootPending = true;
                _wake.Raise(WakeReasons.RebootRequested);
            }
        }
    }

    // A failed answer (a timeout, the broker refusing it) is tried again while this connection lasts: an always-online
    // device would otherwise leave the command unanswered until its next connection, which may never come. (A lost
    // connection brings the command back by itself.) A retry after a
    // lost acknowledgement can send the answer twice; the gateway ignores an answer to a finished command.
    private async Task<bool> TryAnswerAsync(CommandRequest request, CommandOutcome outcome)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await AnswerAsync(request, outcome).ConfigureAwait(false);
                return true;
            }
            catch (Exception ex) when (attempt < AnswerAttempts && _connection.IsConnected)
            {
                _log.Step($"COULD NOT SEND COMMAND RESPONSE (ATTEMPT {attempt} OF {AnswerAttempts}), TRYING AGAIN: {ex.GetBaseException().Message}");
                await Task.Delay(AnswerRetryDelay * attempt, _time).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                _log.Step($"COULD NOT SEND COMMAND RESPONSE: {ex.GetBaseException().Message}");
                return false;
            }
        }
    }

    private async Task AnswerAsync(CommandRequest request, CommandOutcome outcome)
    {
        await _connection.PublishAsync(_topics.CommandResponse, _runner.Answer(request, outcome)).ConfigureAwait(false);
        Interlocked.Increment(ref _commandsAnswered);
    }

    public void ChangeInterval(TimeSpan interval)
    {
        Interlocked.Exchange(ref _intervalTicks, interval.Ticks);
        _wake.Raise(WakeReasons.IntervalChanged);
    }

    // GET_CONFIG: what the device runs with. Never the credentials.
    public JsonObject DescribeConfiguration() => new()
    {
        ["deviceId"] = DeviceId,
        // The answer leaves the device and is stored by the gateway for any API reader: no user name either.
        ["broker"] = (_settings.Broker with { Username = null, Password = null }).ToString(),
        ["protocol"] = _connection.Protocol == MqttProtocolVersion.V500 ? "5" : "3.1.1",
        ["intervalSeconds"] = Interval.TotalSeconds,
        ["onlineSeconds"] = _settings.OnlineWindow.TotalSeconds,
        ["alwaysOnline"] = _settings.AlwaysOnline,
        ["qos"] = 2,
        ["topics"] = new JsonObject
        {
            ["data"] = _topics.Data,
            ["commandRequest"] = _topics.CommandRequest,
            ["commandResponse"] = _topics.CommandResponse,
            ["register"] = _topics.Register,
        },
    };
}
