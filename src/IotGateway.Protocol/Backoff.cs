namespace IotGateway.Protocol;

// Doubling retry delays: first, 2×first, 4×first… capped at max. Every retry loop of the gateway and the simulator uses it.
public static class Backoff
{
    public static TimeSpan Delay(TimeSpan first, TimeSpan max, int attempt) =>
        TimeSpan.FromTicks((long)Math.Min(max.Ticks, first.Ticks * Math.Pow(2, Math.Clamp(attempt, 0, 30))));

    // Somewhere in the upper half of Delay, at random: clients that lost their broker together (a fleet of devices,
    // several gateways) do not all come back in the same instant.
    public static TimeSpan Jittered(TimeSpan first, TimeSpan max, int attempt) =>
        Delay(first, max, attempt) * (0.5 + (Random.Shared.NextDouble() / 2));
}
