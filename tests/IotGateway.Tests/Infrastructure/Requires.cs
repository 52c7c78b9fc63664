using IotGateway.Testing;

namespace IotGateway.Tests.Infrastructure;

/// <summary>
/// For a <c>[SkippableFact]</c>: skips the test when a real part it needs is not installed, except under CI=true,
/// where its absence is a failure (CI installs them, so a missing one is a broken pipeline, not a reason to skip).
/// </summary>
public static class Requires
{
    /// <summary>True when the environment variable CI is "true" (or "1").</summary>
    public static bool IsCi =>
        Environment.GetEnvironmentVariable("CI") is { } ci
        && (ci.Equals("true", StringComparison.OrdinalIgnoreCase) || ci == "1");

    public static void Mosquitto() => SkipUnless(MosquittoBroker.IsInstalled, "Mosquitto", MosquittoBroker.NotInstalledMessage);

    public static void PostgreSql() => SkipUnless(PostgresCluster.IsInstalled, "PostgreSQL", PostgresCluster.NotInstalledMessage);

    private static void SkipUnless(bool installed, string name, string notInstalled)
    {
        if (installed)
        {
            return;
        }

        if (IsCi)
        {
            throw new InvalidOperationException($"CI=true, so {name} is required. {notInstalled}");
        }

        Skip.If(true, notInstalled);
    }
}
