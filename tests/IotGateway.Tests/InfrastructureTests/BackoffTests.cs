using IotGateway.Protocol;

namespace IotGateway.Tests.InfrastructureTests;

// The one doubling delay behind the gateway's retry loops (reconnect, ingest, Published marks, database start).
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
}
