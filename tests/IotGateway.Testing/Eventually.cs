using System.Diagnostics;
using System.Globalization;

namespace IotGateway.Testing;

/// <summary>
/// Waits for a condition with a deadline instead of sleeping a fixed time and hoping. Polls every
/// <see cref="PollInterval"/> (or the interval given); when the deadline passes it throws a <see cref="TimeoutException"/>
/// naming what it waited for (<c>because</c>) and the last value it saw. Exceptions thrown by a
/// probe are not swallowed: they end the wait at once.
/// </summary>
/// <example>
/// <code>
/// var command = await Eventually.UntilAsync(
///     () => api.GetCommandAsync(id), c => c.Status == "Completed",
///     TimeSpan.FromSeconds(5), "the command is completed");
/// </code>
/// </example>
public static class Eventually
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(25);

    /// <summary>Until <paramref name="probe"/> returns a non-null value, which is returned.</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string because, CancellationToken ct = default)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(probe);
        var value = await UntilAsync(probe, static v => v is not null, timeout, because, ct).ConfigureAwait(false);
        return value!;
    }

    /// <summary>Until <paramref name="probe"/> returns a value (not null), which is returned.</summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string because, CancellationToken ct = default)
        where T : struct
    {
        ArgumentNullException.ThrowIfNull(probe);
        var value = await UntilAsync(probe, static v => v.HasValue, timeout, because, ct).ConfigureAwait(false);
        return value!.Value;
    }

    /// <summary>
    /// Until <paramref name="condition"/> holds for the value <paramref name="probe"/> returns; returns that value.
    /// <paramref name="interval"/> spaces the probes where asking often would load what is measured.
    /// </summary>
    public static async Task<T> UntilAsync<T>(
        Func<Task<T>> probe, Func<T, bool> condition, TimeSpan timeout, string because, CancellationToken ct = default, TimeSpan? interval = null)
    {
        ArgumentNullException.ThrowIfNull(probe);
        ArgumentNullException.ThrowIfNull(condition);
        var stopwatch = Stopwatch.StartNew();
        var attempts = 0;
        var observed = false;
        T? last = default;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var remaining = timeout - stopwatch.Elapsed;
            if (remaining <= TimeSpan.Zero && attempts > 0)
            {
                throw Timeout(timeout, because, attempts, observed, last, probeStillRunning: false);
            }

            attempts++;
            T value;
            var probing = probe();
            try
            {
                // A probe that hangs past the deadline must not hang the test.
                value = await probing.WaitAsync(remaining > TimeSpan.Zero ? remaining : TimeSpan.FromMilliseconds(1), ct)
                    .ConfigureAwait(false);
            }
            catch (TimeoutException) when (!probing.IsCompleted)
            {
                throw Timeout(timeout, because, attempts, observed, last, probeStillRunning: true);
            }

            last = value;
            observed = true;
            if (condition(value))
            {
                return value;
            }

            var delay = timeout - stopwatch.Elapsed;
            if (delay > (interval ?? PollInterval))
            {
                delay = interval ?? PollInterval;
            }

            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Until the asynchronous <paramref name="condition"/> returns true.</summary>
    public static Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string because, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return UntilAsync(condition, static ok => ok, timeout, because, ct);
    }

    /// <summary>Until <paramref name="condition"/> returns true.</summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string because, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(condition);
        return UntilAsync(() => Task.FromResult(condition()), static ok => ok, timeout, because, ct);
    }

    private static TimeoutException Timeout<T>(
        TimeSpan timeout, string because, int attempts, bool observed, T? last, bool probeStillRunning)
    {
        var lastText = observed ? Describe(last) : "(none: the probe never returned)";
        var message = string.Create(
            CultureInfo.InvariantCulture,
            $"Timed out after {timeout.TotalSeconds:0.###} s waiting until {because}. Last observed value: {lastText}. Probed {attempts} time(s)");
        return new TimeoutException(message + (probeStillRunning ? "; the last probe was still running at the deadline." : "."));
    }

    private static string Describe<T>(T value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "null",
    };
}
