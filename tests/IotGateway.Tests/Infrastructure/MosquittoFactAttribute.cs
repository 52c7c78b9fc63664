namespace IotGateway.Tests.Infrastructure;

/// <summary>
/// A <c>[Fact]</c> that needs a real Mosquitto: skipped with a clear message when it is not
/// installed, except when CI=true, where the test runs and fails (CI must install Mosquitto).
/// For a decision inside the test body use <c>[SkippableFact]</c> with
/// <see cref="Requires.Mosquitto"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class MosquittoFactAttribute : FactAttribute
{
    public MosquittoFactAttribute()
    {
        if (MosquittoRequirement.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>The <c>[Theory]</c> counterpart of <see cref="MosquittoFactAttribute"/>.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class MosquittoTheoryAttribute : TheoryAttribute
{
    public MosquittoTheoryAttribute()
    {
        if (MosquittoRequirement.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

internal static class MosquittoRequirement
{
    /// <summary>Null when Mosquitto tests must run (installed, or CI=true so that a missing broker fails).</summary>
    public static string? SkipReason =>
        MosquittoBroker.IsInstalled || Requires.IsCi
            ? null
            : "Needs Mosquitto (CI=true makes this a failure instead of a skip). " + MosquittoBroker.NotInstalledMessage;
}
