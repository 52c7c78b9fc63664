
namespace IotGateway.Tests.Gateway;

// README: appsettings.json, then environment variables, then the article's variables, then the command line, each
// overriding the one before. The built gateway is given conflicting values for its session name (appsettings.json
// says iot-gateway) and must connect with the one the order says; Mosquitto's log shows which it used.
public sealed class ConfigurationPrecedenceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableTheory]
    [InlineData(null, null, null, "iot-gateway")]                // appsettings.json alone
    [InlineData("from-env", null, null, "from-env")]            // environment over appsettings.json
    [InlineData("from-env", "from-article", null, "from-article")] // the article's SERVER_ID over Mqtt__ClientId
    [InlineData("from-env", "from-article", "from-cli", "from-cli")] // the command line over everything
    public async Task LaterSourcesOverrideEarlierOnes(string? environment, string? serverId, string? commandLine, string expected)
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        using var data = new TempDirectory("iotgw-precedence-");
        var variables = new Dictionary<string, string>
        {
            ["BROKER"] = broker.Url,
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["Api__Keys__0__Key"] = GatewayApp.OperatorKey,
            ["Api__Keys__0__Role"] = "Operator",
        };
        if (environment is not null)
        {
            variables["Mqtt__ClientId"] = environment;
        }

        if (serverId is not null)
        {
            variables["SERVER_ID"] = serverId;
        }

        string[] arguments = commandLine is null ? [] : [$"--Mqtt:ClientId={commandLine}"];
        await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, data.Path, variables, arguments);
        await gateway.WaitUntilReadyAsync(Timeout);

        Assert.Contains($" as {expected} ", broker.ReadLog(), StringComparison.Ordinal);
    }
}
