
namespace IotGateway.Tests.InfrastructureTests;

public sealed class EventuallyTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Returns_the_first_non_null_value()
    {
        var calls = 0;
        var value = await Eventually.UntilAsync(
            () => Task.FromResult(++calls >= 3 ? "ready" : null),
            Long,
            "the value is ready");

        Assert.Equal("ready", value);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task Returns_the_first_value_of_a_nullable_struct()
    {
        var calls = 0;
        var value = await Eventually.UntilAsync(
            () => Task.FromResult(++calls >= 2 ? (int?)42 : null),
            Long,
            "a number arrives");

        Assert.Equal(42, value);
    }

    [Fact]
    public async Task Returns_the_value_that_satisfies_the_condition()
    {
        var counter = 0;
        var value = await Eventually.UntilAsync(
            () => Task.FromResult(Interlocked.Increment(ref counter)),
            n => n >= 5,
            Long,
            "the counter reaches 5");

        Assert.Equal(5, value);
    }

    [Fact]
    public async Task Bool_overloads_wait_for_true()
    {
        var flag = 0;
        _ = Task.Run(async () =>
        {
            await Task.Delay(50);
            Volatile.Write(ref flag, 1);
        });

        await Eventually.UntilAsync(() => Volatile.Read(ref flag) == 1, Long, "the flag is set");
        await Eventually.UntilAsync(() => Task.FromResult(Volatile.Read(ref flag) == 1), Long, "the flag is set");
    }

    [Fact]
    public async Task Timeout_names_the_reason_and_the_last_observed_value()
    {
        var error = await Assert.ThrowsAsync<TimeoutException>(() => Eventually.UntilAsync(
            () => Task.FromResult("Pending"),
            s => s == "Completed",
            Short,
            "the command is completed"));

        Assert.Contains("the command is completed", error.Message, StringComparison.Ordinal);
        Assert.Contains("\"Pending\"", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_probe_that_hangs_past_the_deadline_times_out()
    {
        var error = await Assert.ThrowsAsync<TimeoutException>(() => Eventually.UntilAsync(
            async () =>
            {
                await Task.Delay(Timeout.Infinite);
                return true;
            },
            Short,
            "a hanging probe answers"));

        Assert.Contains("still running", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_exceptions_are_not_swallowed()
    {
        await Assert.ThrowsAsync<InvalidOperationException>(() => Eventually.UntilAsync(
            () => Task.FromException<string?>(new InvalidOperationException("boom")),
            Long,
            "the probe works"));
    }
}
