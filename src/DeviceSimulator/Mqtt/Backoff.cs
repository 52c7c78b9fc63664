namespace DeviceSimulator.Mqtt;

// Exponential backoff with jitter, so ten thousand devices that lost the broker together do not return together.
internal static class Backoff
{
    private static readonly TimeSpan First = TimeSpan.FromSeconds(0.5);
    private static readonly TimeSpan Longest = TimeSpan.FromSeconds(30);

    public static TimeSpan Delay(int failedAttempts)
    {
        var exponential = First.TotalSeconds * Math.Pow(2, Math.Min(failedAttempts, 10));
        var capped = Math.Min(exponential, Longest.TotalSeconds);
        return TimeSpan.FromSeconds(capped * (0.5 + Random.Shared.NextDouble() * 0.5));
    }
}
