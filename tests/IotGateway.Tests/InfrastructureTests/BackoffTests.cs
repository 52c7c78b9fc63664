
namespace IotGateway.Tests.InfrastructureTests;

// The one doubling delay behind the retry loops of the gateway (reconnect, ingest, Published marks, database start)
// and of the simulator's devices.
public sealed class BackoffTests
{
    [Theory]
    [InlineData(-1, 0.25)]
    [InlineData(0, 0.25)]
    [InlineData(1, 0.5)]
    [InlineData(3, 2)]
    [InlineData(6, 10)]
    [InlineData(1000, 10)]
    public void DoublesFromTheFirstDelayUpToTheCap(int attempt, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), Backoff.Delay(TimeSpan.FromSeconds(0.25), TimeSpan.FromSeconds(10), attempt));

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(1000)]
    public void JitteredStaysInTheUpperHalfOfTheDelay(int attempt)
    {
        var full = Backoff.Delay(TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(30), attempt);
        var delays = Enumerable.Range(0, 200).Select(_ => Backoff.Jittered(TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(30), attempt)).ToList();

        Assert.All(delays, d => Assert.InRange(d, full / 2, full));
        Assert.True(delays.Distinct().Count() > 1, "the delays are spread, not one value");
    }
}
