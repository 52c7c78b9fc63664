using System.Text.RegularExpressions;
using IotGateway.Commands;
using IotGateway.Mqtt;
using IotGateway.Telemetry;
using IotGateway.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using YamlDotNet.RepresentationModel;

namespace IotGateway.Tests.Deployment;

// There is no Docker engine in CI, so these check what can be checked without one: every setting the
// compose file and the Dockerfile give the gateway is one it actually reads, and the ports agree.
public sealed partial class DeploymentFilesTests
{
    private static readonly string Root = Repository.Root;

    [Fact]
    public void ComposeGatewaySettingsAreKeysTheGatewayReads()
    {
        var environment = ServiceEnvironment("gateway");
        Assert.NotEmpty(environment);
        AssertGatewayReads(environment);
        Assert.Equal("mqtt://mosquitto:1883", environment["BROKER"]);
        Assert.Equal("true", environment["Commands__Heartbeat__Enabled"]);
    }

    [Fact]
    public void DockerfileSettingsAreKeysTheGatewayReads()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        var gatewayStage = dockerfile[dockerfile.IndexOf("AS gateway", StringComparison.Ordinal)..];
        var env = EnvInstruction().Match(gatewayStage);
        Assert.True(env.Success, "the gateway stage sets its environment");
        var settings = EnvPair().Matches(env.Groups[1].Value).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Trim('"'));
        AssertGatewayReads(settings.Where(kv => !kv.Key.StartsWith("ASPNETCORE_", StringComparison.Ordinal)).ToDictionary());
        Assert.Equal("8080", settings["ASPNETCORE_HTTP_PORTS"]);
        // The embedded broker's loopback default would be unreachable through the published port 1883.
        Assert.Equal("0.0.0.0", settings["Mqtt__Embedded__BindAddress"]);
        Assert.Contains("EXPOSE 8080 1883", gatewayStage, StringComparison.Ordinal);
        Assert.Contains("/health/live", gatewayStage, StringComparison.Ordinal);
        Assert.Contains("USER app", gatewayStage, StringComparison.Ordinal);
    }

    [Fact]
    public void ComposePublishesTheGatewayPortAndMountsItsDataFolder()
    {
        var gateway = Service("gateway");
        Assert.Contains("8080:8080", ((YamlSequenceNode)gateway["ports"]).Select(p => p.ToString()));
        Assert.Contains("gateway-data:/app/data", ((YamlSequenceNode)gateway["volumes"]).Select(v => v.ToString()));
    }

    [Fact]
    public void ComposeSimulatorSettingsAreTheArticleDeviceVariables()
    {
        var simulator = ServiceEnvironment("simulator");
        string[] known = ["BROKER", "DEVICE_ID", "DATA_TOPIC", "CMD_REQ_TOPIC", "CMD_RESP_TOPIC", "REGISTER_TOPIC"];
        Assert.All(simulator.Keys, key => Assert.Contains(key, known));

        // Both sides of the broker agree on the topics.
        var gateway = ServiceEnvironment("gateway");
        foreach (var topic in new[] { "DATA_TOPIC", "CMD_REQ_TOPIC", "CMD_RESP_TOPIC", "REGISTER_TOPIC" })
        {
            Assert.Equal(gateway[topic], simulator[topic]);
        }
    }

    // Binds every section the gateway has with unknown keys rejected, exactly as the gateway does at start.
    private static void AssertGatewayReads(IReadOnlyDictionary<string, string> environment)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(environment.Where(kv => !ArticleEnvironment.Variables.ContainsKey(kv.Key))
                .Select(kv => new KeyValuePair<string, string?>(kv.Key.Replace("__", ":", StringComparison.Ordinal), kv.Value)))
            .Build();

        foreach (var section in configuration.GetChildren())
        {
            switch (section.Key)
            {
                case MqttOptions.Section:
                    section.Get<MqttOptions>(ConfigurationBinding.RejectUnknownKeys);
                    break;
                case CommandOptions.Section:
                    section.Get<CommandOptions>(ConfigurationBinding.RejectUnknownKeys);
                    break;
                case IngestOptions.Section:
                    section.Get<IngestOptions>(ConfigurationBinding.RejectUnknownKeys);
                    break;
                case global::IotGateway.Security.ApiOptions.Section:
                    section.Get<global::IotGateway.Security.ApiOptions>(ConfigurationBinding.RejectUnknownKeys);
                    break;
                case "ConnectionStrings":
                    Assert.All(section.GetChildren(), c => Assert.Equal(Data.StorageSetup.ConnectionStringName, c.Key));
                    break;
                case "Logging":
                    break;
                default:
                    Assert.Fail($"'{section.Key}' is not a setting the gateway reads");
                    break;
            }
        }
    }

    private static Dictionary<string, string> ServiceEnvironment(string service) =>
        ((YamlMappingNode)Service(service)["environment"]).Children.ToDictionary(kv => kv.Key.ToString(), kv => kv.Value.ToString());

    private static YamlMappingNode Service(string name)
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(Root, "docker-compose.yml")))
        {
            yaml.Load(reader);
        }

        var services = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["services"];
        return (YamlMappingNode)services[name];
    }

    [GeneratedRegex(@"^ENV\s+((?:.*\\\r?\n)*.*)$", RegexOptions.Multiline)]
    private static partial Regex EnvInstruction();

    [GeneratedRegex("""([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)""")]
    private static partial Regex EnvPair();
}
