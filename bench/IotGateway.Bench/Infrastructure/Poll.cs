using System.Diagnostics;

namespace IotGateway.Bench.Infrastructure;

/// <summary>Waits for a condition by asking again at a fixed interval, never longer than a deadline.</summary>
public static class Poll
{
    /// <summary>
    /// Calls <paramref name="isDone"/> every <paramref name="interval"/> until it returns true; throws a
    /// <see cref="BenchFailure"/> with <paramref name="describeTimeout"/>'s text when <paramref name="timeout"/> runs out.
    /// </summary>
    public static async Task UntilAsync(Func<CancellationToken, Task<bool>> isDone, TimeSpan interval, TimeSpan timeout,
        Func<string> describeTimeout, CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.StartNew();
        while (!await isDone(cancellationToken))
        {
            if (elapsed.Elapsed >= timeout)
            {
                throw new BenchFailure($"Timed out after {timeout.TotalSeconds:0.#} s: {describeTimeout()}");
            }

            await Task.Delay(interval, cancellationToken);
        }
    }
}
