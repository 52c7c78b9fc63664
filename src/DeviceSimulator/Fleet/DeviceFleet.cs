using System.Globalization;
using DeviceSimulator.Devices;
using DeviceSimulator.Tcp;

namespace DeviceSimulator.Fleet;

internal sealed record FleetSettings
{
    public const string DefaultIdPrefix = "sim-device";

    // Broker, topics, interval, window, protocol… shared by every device; DeviceId is replaced per device.
    public required DeviceSettings Template { get; init; }
    public required int Devices { get; init; }
    public string IdPrefix { get; init; } = DefaultIdPrefix;

    // Connects in flight at once: enough to sign in thousands of devices in seconds, few enough not to flood the broker.
    public int MaxConcurrentConnects { get; init; } = 100;

    public TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(5);
}

internal sealed record FleetSummary(int Devices, int SignedIn, int Connected, long ReadingsSent, long CommandsAnswered, long ConnectFailures)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"devices {Devices}, signed in {SignedIn}, connected {Connected}, readings sent {ReadingsSent}, commands answered {CommandsAnswered}, connect failures {ConnectFailures}");
}

// Many simulated devices in one process: ids {prefix}-0001…, windows spread evenly over one interval so the
// broker sees a steady stream instead of N connects at once, and every connect through one bounded gate.
internal sealed class DeviceFleet : IDisposable
{
    private readonly FleetSettings _settings;
    private readonly TextWriter _output;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _connectSlots;
    private readonly ISimulatedDevice[] _devices;

    public DeviceFleet(FleetSettings settings, TextWriter? output = null, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(settings.Devices, 1);
        _settings = settings;
        _output = output ?? Console.Out;
        _time = time ?? TimeProvider.System;
        _connectSlots = new SemaphoreSlim(settings.MaxConcurrentConnects, settings.MaxConcurrentConnects);
        _devices = new ISimulatedDevice[settings.Devices];
        for (var i = 0; i < _devices.Length; i++)
        {
            var deviceSettings = SettingsForDevice(i);
            var log = new DeviceLog(_output, deviceSettings.DeviceId, deviceSettings.LogEachMessage);
            _devices[i] = deviceSettings.Transport == DeviceTransport.Tcp
                ? new TcpSimulatedDevice(deviceSettings, log, _connectSlots, _time)
                : new SimulatedDevice(deviceSettings, log, _connectSlots, _time);
        }
    }

    public IReadOnlyList<ISimulatedDevice> Devices => _devices;

    // When every device first had SIGN_IN published, measured from the start of RunAsync.
    public TimeSpan? AllSignedInAfter { get; private set; }

    public static string DeviceIdFor(string prefix, int number) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}-{number:D4}");

    // Runs every device until cancelled; they all sign out before this returns.
    public async Task<FleetSummary> RunAsync(CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var mode = _settings.Template.AlwaysOnline ? "always online" : $"online {_settings.Template.OnlineWindow.TotalSeconds:0.###} s in every interval";
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"[fleet] STARTING {_devices.Length} DEVICES {DeviceIdFor(_settings.IdPrefix, 1)}..{DeviceIdFor(_settings.IdPrefix, _devices.Length)} ON {_settings.Template.ServerDescription}, interval {_settings.Template.Interval.TotalSeconds:0.###} s, {mode}"));

        using var progressStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var progress = Task.WhenAll(WatchSignInAsync(started, progressStop.Token), ReportProgressAsync(started, progressStop.Token));
        using var stopping = cancellationToken.Register(() => _output.WriteLine($"[fleet] STOPPING: SIGNING OUT {_devices.Length} DEVICES"));
        var running = new Task[_devices.Length];
        for (var i = 0; i < _devices.Length; i++)
        {
            running[i] = _devices[i].RunAsync(cancellationToken);
        }

        try
        {
            await Task.WhenAll(running).ConfigureAwait(false);
        }
        finally
        {
            await progressStop.CancelAsync().ConfigureAwait(false);
            await progress.ConfigureAwait(false);
        }

        var summary = Summarize();
        _output.WriteLine($"[fleet] STOPPED after {_time.GetElapsedTime(started).TotalSeconds:0.0} s: {summary}");
        return summary;
    }

    public FleetSummary Summarize()
    {
        int signedIn = 0, connected = 0;
        long readings = 0, answered = 0, failures = 0;
        foreach (var device in _devices)
        {
            signedIn += device.IsSignedIn ? 1 : 0;
            connected += device.IsConnected ? 1 : 0;
            readings += device.ReadingsSent;
            answered += device.CommandsAnswered;
            failures += device.ConnectFailures;
        }

        return new FleetSummary(_devices.Length, signedIn, connected, readings, answered, failures);
    }

    public void Dispose()
    {
        foreach (var device in _devices)
        {
            device.Dispose();
        }

        _connectSlots.Dispose();
    }

    private DeviceSettings SettingsForDevice(int index)
    {
        var template = _settings.Template;
        return template with
        {
            DeviceId = DeviceIdFor(_settings.IdPrefix, index + 1),
            // Device i opens its first window i/N of the way through the interval.
            FirstWindowDelay = template.Interval * index / _devices.Length,
            RandomSeed = template.RandomSeed is { } seed ? unchecked(seed + index) : null,
        };
    }

    // Polls (cheaply: a few bools) until every device has signed in, to report how long the whole fleet took.
    private async Task WatchSignInAsync(long started, CancellationToken cancellationToken)
    {
        try
        {
            while (_devices.Any(device => !device.IsSignedIn))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), _time, cancellationToken).ConfigureAwait(false);
            }

            AllSignedInAfter = _time.GetElapsedTime(started);
            _output.WriteLine($"[fleet] ALL {_devices.Length} DEVICES SIGNED IN after {AllSignedInAfter.Value.TotalSeconds:0.00} s");
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReportProgressAsync(long started, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_settings.ProgressInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                _output.WriteLine($"[fleet] {_time.GetElapsedTime(started).TotalSeconds:0} s: {Summarize()}");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
