namespace IotGateway;

// Doubling retry delays: first, 2×first, 4×first… capped at max. Every retry loop in the gateway uses it.
public static class Backoff
{
    public static TimeSpan Delay(TimeSpan first, TimeSpan max, int attempt) =>
        TimeSpan.FromTicks((long)Math.Min(max.Ticks, first.Ticks * Math.Pow(2, Math.Clamp(attempt, 0, 30))));
}
