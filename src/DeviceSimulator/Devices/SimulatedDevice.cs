using System.Globalization;
using DeviceSimulator.Commands;
using DeviceSimulator.Mqtt;
using DeviceSimulator.Telemetry;
using IotGateway.Protocol;

namespace DeviceSimulator.Devices;

// The article's MQTT IoT device: signs in once, then every interval connects for a short window, sends one
// reading and answers the commands that waited for it; signs out when stopped. With AlwaysOnline it stays
// connected instead. One async loop per device and no thread of its own, so a fleet of thousands is cheap.
internal sealed partial class SimulatedDevice : ISimulatedDevice, ICommandTarget
{
    private const int MaxUnsentReadings = 100;
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan AnswerRetryDelay = TimeSpan.FromSeconds(0.5);
    private const int AnswerAttempts = 3;
    private static readonly TimeSpan SignOutTimeout = TimeSpan.FromSeconds(15);

    // Stopping with the broker down should not hang for long; if we were online the broker has our will anyway.
    private static readonly TimeSpan SignOutConnectBudget = TimeSpan.FromSeconds(5);

    private readonly DeviceSettings _settings;
    private readonly DeviceTopics _topics;
    private readonly DeviceLog _log;
    private readonly TimeProvider _time;
    private readonly Sensors _sensors;
    private readonly DeviceConnection _connection;
    private readonly WakeSignal _wake = new();
    private readonly CommandDoor _commands = new();

    // Readings that could not be published yet; sent first at the next connection, with their original messageId.
    private readonly Queue<TelemetryMessage> _unsent = new();

    private readonly CommandRunner _runner;

    private long _intervalTicks;
    private long _readingsSent;
    private long _commandsAnswered;
    private long _connectFailures;
    private volatile bool _signedIn;
    private volatile bool _stopping;

    // REBOOT was answered: the connection must end by dropping, not by DISCONNECT.
    private volatile bool _rebootPending;

    // The broker has published (or may have published) our Last Will since the last SIGN_IN.
    private bool _signInNeeded = true;

    public SimulatedDevice(DeviceSettings settings, DeviceLog? log = null, SemaphoreSlim? connectSlots = null, TimeProvider? time = null)
    {
        _settings = settings;
        _topics = settings.OwnTopics();
        _log = log ?? new DeviceLog(Console.Out, null, settings.LogEachMessage);
        _runner = new CommandRunner(settings.DeviceId, this, _log);
        _time = time ?? TimeProvider.System;
        _sensors = new Sensors(settings.RandomSeed is { } seed ? new Random(seed) : new Random());
        _intervalTicks = settings.Interval.Ticks;
        _connection = new DeviceConnection(
            settings, _topics, connectSlots ?? new SemaphoreSlim(1, 1), OnMessageAsync, () => _wake.Raise(WakeReasons.ConnectionLost));
    }

    public DeviceSettings Settings => _settings;
    public string DeviceId => _settings.DeviceId;
    public TimeSpan Interval => TimeSpan.FromTicks(Interlocked.Read(ref _intervalTicks));
    public long ReadingsSent => Interlocked.Read(ref _readingsSent);
    public long CommandsAnswered => Interlocked.Read(ref _commandsAnswered);
    public long ConnectFailures => Interlocked.Read(ref _connectFailures);

    // The device's last presence message was SIGN_IN (its own), not SIGN_OUT (its own or its Last Will).
    public bool IsSignedIn => _signedIn;
    public bool IsConnected => _connection.IsConnected;

    // Runs until cancelled, then signs out (retained SIGN_OUT) as the article does on Ctrl+C.
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        // Windows keep their place relative to the start, however long signing in takes: a fleet stays evenly spread.
        var firstWindow = _time.GetUtcNow() + (_settings.FirstWindowDelay ?? Interval);
        try
        {
            if (_settings.AlwaysOnline)
            {
                await StayOnlineAsync(firstWindow, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await RunWindowsAsync(firstWindow, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // Stopped: MQTTnet reports an operation cut short as a timeout or a communication error, not only
            // as OperationCanceledException.
        }

        await SignOutAsync().ConfigureAwait(false);
    }

    // ---- The article's occasionally connected device ----

    private async Task RunWindowsAsync(DateTimeOffset firstWindow, CancellationToken cancellationToken)
    {
        _log.Step("SUBSCRIBING AND SENDING SIGN IN MESSAGE");
        await ConnectAndSignInAsync(cancellationToken).ConfigureAwait(false);
        await EndConnectionAsync(cancellationToken).ConfigureAwait(false);

        _log.Step($"CONNECTING TO BROKER AND SENDING DATA EVERY {Seconds(Interval)} SECONDS");
        var nextWindow = NextSlot(firstWindow);
        while (true)
        {
            await Task.Delay(Later(nextWindow), _time, cancellationToken).ConfigureAwait(false);
            var started = _time.GetUtcNow();
            await RunWindowAsync(started + _settings.OnlineWindow, cancellationToken).ConfigureAwait(false);
            // Read the interval after the window: a SET_INTERVAL answered in it applies from this window on.
            nextWindow = started + Interval;
        }
    }

    private async Task RunWindowAsync(DateTimeOffset windowEnd, CancellationToken cancellationToken)
    {
        if (!await ConnectWithRetryAsync(giveUpAt: windowEnd, cancellationToken).ConfigureAwait(false))
        {
            _log.Step("SKIPPING THIS WINDOW; THE READING WAITS FOR THE NEXT ONE");
            TakeReading();
            return;
        }

        try
        {
            _log.Step("CONNECTED TO MQTT BROKER");
            await SubscribeAsync().ConfigureAwait(false);
            if (_signInNeeded)
            {
                await PublishSignInAsync().ConfigureAwait(false);
            }

            await SendTelemetryAsync().ConfigureAwait(false);
            _log.Step($"WAITING FOR {Seconds(_settings.OnlineWindow)} SECONDS");
            var reasons = await _wake.WaitUntilAsync(windowEnd, _time, cancellationToken).ConfigureAwait(false);
            // A changed interval, or the late end of an earlier connection, does not end this window.
            while (reasons != WakeReasons.None && !_rebootPending && _connection.IsConnected)
            {
                reasons = await _wake.WaitUntilAsync(windowEnd, _time, cancellationToken).ConfigureAwait(false);
            }

            await EndConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Whatever failed, start the next window from a clean state; the broker may publish our will.
            _log.Step($"WINDOW FAILED: {ex.GetBaseException().Message}");
            LoseConnection();
        }
    }

    // ---- Always online: connected all the time, telemetry every interval ----

    private async Task StayOnlineAsync(DateTimeOffset firstReading, CancellationToken cancellationToken)
    {
        _log.Step("SUBSCRIBING AND SENDING SIGN IN MESSAGE");
        await ConnectAndSignInAsync(cancellationToken).ConfigureAwait(false);
        _log.Step($"STAYING CONNECTED AND SENDING DATA EVERY {Seconds(Interval)} SECONDS");

        var lastReading = NextSlot(firstReading) - Interval;
        while (true)
        {
            var reasons = await _wake.WaitUntilAsync(lastReading + Interval, _time, cancellationToken).ConfigureAwait(false);
            if (_rebootPending)
            {
                await WaitForCommandsInProgressAsync(cancellationToken).ConfigureAwait(false);
                Reboot();
            }
            else if (!_connection.IsConnected)
            {
                _log.Step("CONNECTION TO MQTT BROKER LOST");
                LoseConnection();
            }

            if (!_connection.IsConnected)
            {
                await ConnectAndSignInAsync(cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (reasons != WakeReasons.None)
            {
                continue;   // only the interval changed: wait again for the new deadline
            }

            lastReading = _time.GetUtcNow();
            try
            {
                await SendTelemetryAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // Kept for the next attempt; a lost connection wakes the loop to reconnect.
                _log.Step($"COULD NOT SEND DATA: {ex.GetBaseException().Message}");
            }
        }
    }

    // ---- Connection steps shared by both modes ----

    private async Task ConnectAndSignInAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            await ConnectWithRetryAsync(giveUpAt: null, cancellationToken).ConfigureAwait(false);
            try
            {
                await SubscribeAsync().ConfigureAwait(false);
                await PublishSignInAsync().ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                _log.Step($"COULD NOT SIGN IN: {ex.GetBaseException().Message}");
                LoseConnection();
                await Task.Delay(ReconnectDelay.After(0), _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    // Retries with backoff until connected, or gives up (false) when the next try would start after giveUpAt.
    private async Task<bool> ConnectWithRetryAsync(DateTimeOffset? giveUpAt, CancellationToken cancellationToken)
    {
        for (var failures = 0; ; failures++)
        {
            _wake.Clear(WakeReasons.ConnectionLost);
            if (!_stopping)
            {
                _commands.Open();   // before connecting: the session's backlog arrives the moment it opens
            }

            var problem = await _connection.TryConnectAsync(cancellationToken).ConfigureAwait(false);
            if (problem is null)
            {
                return true;
            }

            Interlocked.Increment(ref _connectFailures);
            var delay = ReconnectDelay.After(failures);
            if (giveUpAt is { } deadline && _time.GetUtcNow() + delay >= deadline)
            {
                _log.Step($"COULD NOT CONNECT TO MQTT BROKER ({problem}), GIVING UP");
                return false;
            }

            _log.Step($"COULD NOT CONNECT TO MQTT BROKER ({problem}), RETRYING IN {Seconds(delay)} SECONDS");
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task SubscribeAsync()
    {
        _log.Step($"SUBSCRIBING TO TOPICS {_topics.CommandRequest}");
        await _connection.SubscribeAsync(_topics.CommandRequest).ConfigureAwait(false);
        _log.Step("SUCCESSFULLY SUBSCRIBED");
    }

    private async Task PublishSignInAsync()
    {
        await _connection.PublishPresenceAsync(_topics.Register, DeviceConnection.SignIn).ConfigureAwait(false);
        _signInNeeded = false;
        _signedIn = true;
    }

    // The end of a connection window (or of the sign-in connection): DISCONNECT, unless REBOOT asked for a drop.
    private async Task EndConnectionAsync(CancellationToken cancellationToken)
    {
        await WaitForCommandsInProgressAsync(cancellationToken).ConfigureAwait(false);
        if (_rebootPending)
        {
            Reboot();
        }
        else if (!_connection.IsConnected)
        {
            _log.Step("CONNECTION TO MQTT BROKER LOST");
            LoseConnection();
        }
        else
        {
            _log.Step("CLOSING CONNECTION TO MQTT BROKER");
            await DisconnectAsync().ConfigureAwait(false);
        }
    }

    // Takes no new command, and lets the one being answered finish (bounded: a stuck broker must not stall us).
    private async Task WaitForCommandsInProgressAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _commands.CloseAsync().WaitAsync(AnswerTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    private async Task DisconnectAsync()
    {
        try
        {
            await _connection.DisconnectAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The DISCONNECT did not go out cleanly, so the broker may publish our will.
            _log.Step($"DISCONNECT FAILED: {ex.GetBaseException().Message}");
            LoseConnection();
        }
    }

    // REBOOT: the answer is out, now vanish like a device losing power; the broker publishes the Last Will.
    private void Reboot()
    {
        _log.Step("REBOOTING: DROPPING THE CONNECTION WITHOUT DISCONNECT");
        _rebootPending = false;
        LoseConnection();
    }

    private void LoseConnection()
    {
        _commands.Close();   // nothing inside can answer on a dead connection; no need to wait
        _connection.Drop();
        _signInNeeded = true;
        _signedIn = false;
    }

    private async Task SignOutAsync()
    {
        _stopping = true;
        _log.Step("SENDING SIGN OUT MESSAGE");
        // Real time on purpose: it bounds network waits, and tests that move a fake clock must not cut them short.
        using var timeout = new CancellationTokenSource(SignOutTimeout);
        try
        {
            await WaitForCommandsInProgressAsync(timeout.Token).ConfigureAwait(false);
            if (!_connection.IsConnected && !await ConnectWithRetryAsync(_time.GetUtcNow() + SignOutConnectBudget, timeout.Token).ConfigureAwait(false))
            {
                _log.Step("COULD NOT SIGN OUT: THE BROKER IS UNREACHABLE");
                return;
            }

            await _connection.PublishPresenceAsync(_topics.Register, DeviceConnection.SignOut).ConfigureAwait(false);
            _signedIn = false;
            await _connection.DisconnectAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _log.Step($"COULD NOT SIGN OUT: {ex.GetBaseException().Message}");
        }
    }

    public void Dispose() => _connection.Dispose();

    // The slot itself if it is still ahead, else the next one a whole number of intervals later.
    private DateTimeOffset NextSlot(DateTimeOffset slot)
    {
        var now = _time.GetUtcNow();
        if (slot >= now)
        {
            return slot;
        }

        var interval = Interval;
        var missed = Math.Ceiling((now - slot) / interval);
        return slot + interval * missed;
    }

    private TimeSpan Later(DateTimeOffset moment)
    {
        var delay = moment - _time.GetUtcNow();
        return delay > TimeSpan.Zero ? delay : TimeSpan.Zero;
    }

    private static string Seconds(TimeSpan span) => span.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
}
