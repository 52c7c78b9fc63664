
namespace IotGateway.Tests.Gateway;

// The settings of several gateways on one database are checked at start like every other: a bad one stops the
// gateway with one line that names the key (exit code 78), before anything is created.
public sealed class DatabaseSettingsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData("Database__Provider=Mongo", "Database:Provider: 'Mongo' is not one of Sqlite, PostgreSQL")]
    [InlineData("Database__Provider=PostgreSQL", "Database:Provider is PostgreSQL but ConnectionStrings:Gateway is a SQLite connection string")]
    [InlineData("Database__Provider=PostgreSQL|ConnectionStrings__Gateway=Port=5432", "ConnectionStrings:Gateway must be a PostgreSQL connection string naming Host and Database")]
    [InlineData("Database__Provider=postgresql|ConnectionStrings__Gateway=Host=db;Colour=blue", "ConnectionStrings:Gateway is not a PostgreSQL connection string")]
    [InlineData("Mqtt__SharedSubscriptionGroup=a/b", "Mqtt:SharedSubscriptionGroup: 'a/b' must be one topic level")]
    [InlineData("Mqtt__SharedSubscriptionGroup=gateways|BROKER=embedded", "Mqtt:SharedSubscriptionGroup: the embedded broker has no shared subscriptions")]
    public async Task BadSettingStopsTheGatewayAndNamesTheKey(string variables, string named)
    {
        using var data = new TempDirectory("iotgw-startup-");
        var environment = new Dictionary<string, string>
        {
            ["BROKER"] = "mqtt://127.0.0.1:1",
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
        };
        foreach (var pair in variables.Split('|').Select(v => v.Split('=', 2)))
        {
            environment[pair[0]] = pair[1];
        }

        await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, data.Path, environment);
        await gateway.WaitForExitAsync(Timeout);
        Assert.True(gateway.ExitCode == 78, string.Join('\n', gateway.Output)); // EX_CONFIG
        Assert.True(gateway.Output.Any(line => line.Contains("Invalid setting, the gateway stops: ", StringComparison.Ordinal) && line.Contains(named, StringComparison.Ordinal)),
            string.Join('\n', gateway.Output));
        Assert.DoesNotContain(gateway.Output, line => line.Contains("Unhandled exception", StringComparison.Ordinal));
        Assert.Empty(Directory.EnumerateFileSystemEntries(data.Path, "*", SearchOption.AllDirectories));
    }
}
