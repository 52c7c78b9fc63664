using System.Text.RegularExpressions;
using IotGateway.Commands;
using IotGateway.Hosting;
using IotGateway.Ingest;
using IotGateway.Mqtt;
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

    // The image's data folder is the app user's only (a new named volume copies its owner and mode).
    [Fact]
    public void TheImagesDataFolderIsTheAppUsersOnly()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        Assert.Contains("install -d -m 700 -o app -g app /app/data", dockerfile, StringComparison.Ordinal);
    }

    // Reproducible builds: global.json pins the SDK's feature band, and the Dockerfile's images are that SDK and its
    // runtime by exact version, never a floating tag such as sdk:10.0.
    [Fact]
    public void TheSdkAndTheImagesArePinnedToOneVersion()
    {
        using var global = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, "global.json")));
        var sdk = global.RootElement.GetProperty("sdk");
        var band = sdk.GetProperty("version").GetString()!;
        Assert.Matches(@"^\d+\.\d+\.\d00$", band);
        Assert.Equal("latestPatch", sdk.GetProperty("rollForward").GetString());

        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        var sdkVersion = DockerArg().Matches(dockerfile).Single(m => m.Groups[1].Value == "SDK_VERSION").Groups[2].Value;
        var runtimeVersion = DockerArg().Matches(dockerfile).Single(m => m.Groups[1].Value == "RUNTIME_VERSION").Groups[2].Value;
        Assert.StartsWith(band[..^2], sdkVersion, StringComparison.Ordinal); // 10.0.4xx for 10.0.400
        Assert.Matches(@"^\d+\.\d+\.\d+$", runtimeVersion);
        var images = FromLine().Matches(dockerfile).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(3, images.Count);
        Assert.All(images, image => Assert.Matches(@":\$\{(SDK|RUNTIME)_VERSION\}$", image));
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

    [Fact]
    public void ComposeTcpSimulatorReachesTheGatewaysTcpListener()
    {
        var gateway = ServiceEnvironment("gateway");
        var port = gateway["SERVER_PORT"];
        // The container's loopback is not reachable from the simulator's container or through the published port.
        Assert.Equal("0.0.0.0", gateway["Tcp__BindAddress"]);
        Assert.Contains($"127.0.0.1:{port}:{port}", ((YamlSequenceNode)Service("gateway")["ports"]).Select(p => p.ToString()));

        var command = ((YamlSequenceNode)Service("simulator-tcp")["command"]).Select(a => a.ToString()).ToList();
        Assert.Equal("tcp", command[command.IndexOf("--transport") + 1]);
        Assert.Equal($"gateway:{port}", command[command.IndexOf("--server") + 1]);
    }

    // The restore layer copies project files one by one: a project the images need but the Dockerfile does not copy
    // fails the image build at restore, which nothing here would notice otherwise.
    [Theory]
    [InlineData("src/IotGateway/IotGateway.csproj")]
    [InlineData("src/DeviceSimulator/DeviceSimulator.csproj")]
    public void DockerfileCopiesEveryProjectAnImageBuildsFrom(string project)
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        foreach (var needed in ProjectClosure(project))
        {
            Assert.Contains($"COPY {needed} ", dockerfile, StringComparison.Ordinal);
        }
    }

    private static IEnumerable<string> ProjectClosure(string project)
    {
        var found = new SortedSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([project]);
        while (pending.TryPop(out var current))
        {
            if (!found.Add(current))
            {
                continue;
            }

            var directory = Path.GetDirectoryName(current)!;
            var xml = System.Xml.Linq.XDocument.Load(Path.Combine(Root, current));
            foreach (var reference in xml.Descendants("ProjectReference"))
            {
                var path = Path.GetRelativePath(Root, Path.GetFullPath(Path.Combine(Root, directory, reference.Attribute("Include")!.Value.Replace('\\', '/'))));
                pending.Push(path.Replace('\\', '/'));
            }
        }

        return found;
    }

    // The scale-out file: two gateways with distinct stable ids, one group, one PostgreSQL database, one shared key.
    [Fact]
    public void ScaleComposeRunsTwoGatewaysOnOnePostgresDatabaseWithTheirOwnIds()
    {
        var a = ServiceEnvironment("gateway-a", "docker-compose.scale.yml");
        var b = ServiceEnvironment("gateway-b", "docker-compose.scale.yml");
        AssertGatewayReads(a);
        AssertGatewayReads(b);
        Assert.Equal(["gateway-a", "gateway-b"], new[] { a["SERVER_ID"], b["SERVER_ID"] });
        foreach (var key in new[] { "Database__Provider", "ConnectionStrings__Gateway", "Mqtt__SharedSubscriptionGroup", "Api__Keys__0__Key", "BROKER" })
        {
            Assert.Equal(a[key], b[key]);
        }

        Assert.Equal("PostgreSQL", a["Database__Provider"]);
        Assert.StartsWith("Host=postgres;", a["ConnectionStrings__Gateway"], StringComparison.Ordinal);
    }

    // Holds every section against the gateway's options, exactly as the gateway does at start (unknown keys, wrong types).
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
                    Assert.Empty(SettingsShape.Problems(typeof(MqttOptions), section));
                    break;
                case global::IotGateway.Data.DatabaseOptions.Section:
                    Assert.Empty(SettingsShape.Problems(typeof(global::IotGateway.Data.DatabaseOptions), section));
                    break;
                case CommandOptions.Section:
                    Assert.Empty(SettingsShape.Problems(typeof(CommandOptions), section));
                    break;
                case IngestOptions.Section:
                    Assert.Empty(SettingsShape.Problems(typeof(IngestOptions), section));
                    break;
                case global::IotGateway.Tcp.TcpOptions.Section:
                    Assert.Empty(SettingsShape.Problems(typeof(global::IotGateway.Tcp.TcpOptions), section));
                    break;
                case global::IotGateway.Security.ApiOptions.Section:
                    Assert.Empty(SettingsShape.Problems(typeof(global::IotGateway.Security.ApiOptions), section));
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

    // A merge key (<<: *anchor) brings in the anchored mapping; the service's own keys win.
    private static Dictionary<string, string> ServiceEnvironment(string service, string file = "docker-compose.yml")
    {
        var environment = new Dictionary<string, string>();
        foreach (var (key, value) in ((YamlMappingNode)Service(service, file)["environment"]).Children)
        {
            if (key.ToString() == "<<")
            {
                foreach (var (k, v) in ((YamlMappingNode)value).Children)
                {
                    environment.TryAdd(k.ToString(), v.ToString());
                }
            }
            else
            {
                environment[key.ToString()] = value.ToString();
            }
        }

        return environment;
    }

    private static YamlMappingNode Service(string name, string file = "docker-compose.yml")
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(Root, file)))
        {
            yaml.Load(reader);
        }

        var services = (YamlMappingNode)((YamlMappingNode)yaml.Documents[0].RootNode)["services"];
        return (YamlMappingNode)services[name];
    }

    [GeneratedRegex(@"^ARG\s+([A-Z_]+)=(\S+)$", RegexOptions.Multiline)]
    private static partial Regex DockerArg();

    [GeneratedRegex(@"^FROM\s+(\S+)", RegexOptions.Multiline)]
    private static partial Regex FromLine();

    [GeneratedRegex(@"^ENV\s+((?:.*\\\r?\n)*.*)$", RegexOptions.Multiline)]
    private static partial Regex EnvInstruction();

    [GeneratedRegex("""([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)""")]
    private static partial Regex EnvPair();
}
