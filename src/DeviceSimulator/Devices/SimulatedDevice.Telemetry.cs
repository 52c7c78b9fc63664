using System.Text;
using DeviceSimulator.Telemetry;

namespace DeviceSimulator.Devices;

// Telemetry: one reading per interval, kept until the broker has it.
internal sealed partial class SimulatedDevice
{
    // One new reading, sent after any older ones still waiting.
    private async Task SendTelemetryAsync()
    {
        TakeReading();
        while (_unsent.TryPeek(out var reading))
        {
            var payload = reading.ToJson();
            if (_log.EachMessage)
            {
                _log.Step($"SENDING DATA: {Encoding.UTF8.GetString(payload)}");
            }

            await _connection.PublishAsync(_topics.Data, payload).ConfigureAwait(false);
            _unsent.Dequeue();
            Interlocked.Increment(ref _readingsSent);
        }
    }

    private void TakeReading()
    {
        if (_unsent.Count == MaxUnsentReadings)
        {
            _unsent.Dequeue();   // a device's buffer is finite: the oldest reading goes
        }

        var now = _time.GetUtcNow();
        _unsent.Enqueue(new TelemetryMessage(DeviceId, Guid.CreateVersion7(now).ToString(), now, _sensors.Read()));
    }
}
