using IotGateway.Protocol;

namespace DeviceSimulator.Devices;

// From half a second up to 30 s, jittered, so ten thousand devices that lost the broker together do not return together.
internal static class ReconnectDelay
{
    private static readonly TimeSpan First = TimeSpan.FromSeconds(0.5);
    private static readonly TimeSpan Longest = TimeSpan.FromSeconds(30);

    public static TimeSpan After(int failedAttempts) => Backoff.Jittered(First, Longest, failedAttempts);
}
