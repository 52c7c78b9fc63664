using DeviceSimulator.Devices;

namespace IotGateway.Tests.Simulator;

// A SimulatedDevice running in the background for one test; disposing it stops it (it signs out) and waits.
internal sealed class RunningDevice : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly StringWriter _output = new();
    private readonly TextWriter _synchronizedOutput;
    private readonly Task _run;

    public RunningDevice(DeviceSettings settings)
    {
        _synchronizedOutput = TextWriter.Synchronized(_output);
        Device = new SimulatedDevice(settings, new DeviceLog(_synchronizedOutput, settings.DeviceId, eachMessage: true));
        _run = Device.RunAsync(_stop.Token);
    }

    public SimulatedDevice Device { get; }

    public string Log
    {
        get
        {
            // TextWriter.Synchronized locks the wrapper itself around every write.
            lock (_synchronizedOutput)
            {
                return _output.ToString();
            }
        }
    }

    // Ctrl+C: cancel and wait for the sign-out to finish.
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await _run.WaitAsync(TimeSpan.FromSeconds(20));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_run.IsCompleted)
        {
            await StopAsync();
        }

        Device.Dispose();
        _stop.Dispose();
    }
}

internal static class Until
{
    // Polls a condition until it holds or the deadline passes; for state that has no event to wait on.
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (!await condition())
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"waited {timeout.TotalSeconds} s for {what}");
            }
        }
    }

    public static Task TrueAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        TrueAsync(() => Task.FromResult(condition()), timeout, what);
}
