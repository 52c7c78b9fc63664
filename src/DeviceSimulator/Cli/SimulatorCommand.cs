using System.CommandLine;
using System.Globalization;
using DeviceSimulator.Commands;
using DeviceSimulator.Devices;
using DeviceSimulator.Fleet;
using DeviceSimulator.Mqtt;
using DeviceSimulator.Tcp;
using IotGateway.Protocol;
using MQTTnet.Formatter;

namespace DeviceSimulator.Cli;

// The command line. The article's environment variables (BROKER, DEVICE_ID, DATA_TOPIC, CMD_REQ_TOPIC,
// CMD_RESP_TOPIC, REGISTER_TOPIC) are the defaults, so its .env files work unchanged; options override them.
internal static class SimulatorCommand
{
    private static readonly double MinimumIntervalSeconds = DeviceCommands.MinimumInterval.TotalSeconds;

    private static readonly Option<string> Broker = new("--broker")
    {
        Description = "Broker URL: mqtt://host:port, mqtts:// for TLS, tcp://, ws:// or wss:// [env: BROKER]",
        DefaultValueFactory = _ => Environment("BROKER", "mqtt://localhost:1883"),
    };

    private static readonly Option<string> Transport = new("--transport")
    {
        Description = "mqtt: the article's MQTT device; tcp: the article's TCP device, connected to --server",
        DefaultValueFactory = _ => "mqtt",
    };

    private static readonly Option<string> Server = new("--server")
    {
        Description = "TCP transport: the gateway's TCP listener as host:port [env: SERVER_HOST, SERVER_PORT]",
        DefaultValueFactory = _ => $"{Environment("SERVER_HOST", "localhost")}:{Environment("SERVER_PORT", "30000")}",
    };

    private static readonly Option<bool> Tls = new("--tls")
    {
        Description = "TCP transport: connect with TLS (see --allow-untrusted for self-signed certificates)",
    };

    private static readonly Option<string> DeviceId = new("--device-id")
    {
        Description = "Client id and topic suffix of the single device [env: DEVICE_ID]",
        DefaultValueFactory = _ => Environment("DEVICE_ID", DeviceSettings.DefaultDeviceId),
    };

    private static readonly Option<string> DataTopic = TopicOption("--data-topic", "DATA_TOPIC", TopicRoots.DefaultData, "Telemetry topic root");
    private static readonly Option<string> CommandRequestTopic = TopicOption("--cmd-req-topic", "CMD_REQ_TOPIC", TopicRoots.DefaultCommandRequest, "Command request topic root");
    private static readonly Option<string> CommandResponseTopic = TopicOption("--cmd-resp-topic", "CMD_RESP_TOPIC", TopicRoots.DefaultCommandResponse, "Command response topic root");
    private static readonly Option<string> RegisterTopic = TopicOption("--register-topic", "REGISTER_TOPIC", TopicRoots.DefaultRegister, "Presence (SIGN_IN/SIGN_OUT) topic root");

    private static readonly Option<double> Interval = new("--interval")
    {
        Description = "Seconds between telemetry readings (and connection windows); decimals allowed",
        DefaultValueFactory = _ => 15,
    };

    private static readonly Option<double> Online = new("--online")
    {
        Description = "Seconds each connection window stays open",
        DefaultValueFactory = _ => 5,
    };

    private static readonly Option<string> Protocol = new("--protocol")
    {
        Description = "MQTT protocol version",
        DefaultValueFactory = _ => "5",
    };

    private static readonly Option<int?> Devices = new("--devices")
    {
        Description = "Run a fleet of N devices named {id-prefix}-0001… instead of one device",
    };

    private static readonly Option<string> IdPrefix = new("--id-prefix")
    {
        Description = "Device id prefix in fleet mode",
        DefaultValueFactory = _ => FleetSettings.DefaultIdPrefix,
    };

    private static readonly Option<bool> AlwaysOnline = new("--always-online")
    {
        Description = "Stay connected: sign in once, send telemetry every interval, answer commands at once",
    };

    private static readonly Option<int> MaxConnects = new("--max-connects")
    {
        Description = "Fleet mode: connects in flight at the same time",
        DefaultValueFactory = _ => 100,
    };

    private static readonly Option<string?> Username = new("--username")
    {
        Description = "Broker user name [env: MQTT_USERNAME]",
    };

    private static readonly Option<string?> Password = new("--password")
    {
        Description = "Broker password [env: MQTT_PASSWORD, which keeps it out of the process list]",
    };

    private static readonly Option<bool> AllowUntrusted = new("--allow-untrusted")
    {
        Description = "Accept any TLS server certificate (self-signed test brokers)",
    };

    private static readonly Option<int?> Seed = new("--seed")
    {
        Description = "Seed for the simulated sensors, for reproducible readings",
    };

    private static readonly Option<bool> Verbose = new("--verbose")
    {
        Description = "Fleet mode: print every message of every device, as a single device does",
    };

    public static RootCommand Create()
    {
        Protocol.AcceptOnlyFromAmong("3.1.1", "5");
        Transport.AcceptOnlyFromAmong("mqtt", "tcp");
        var root = new RootCommand("Simulated MQTT IoT device(s), after the article's Node.js device: presence with Last Will, "
            + "telemetry every interval in a short connection window, commands answered from a persistent session.")
        {
            Broker, Transport, Server, Tls, DeviceId, DataTopic, CommandRequestTopic, CommandResponseTopic, RegisterTopic,
            Interval, Online, Protocol, Devices, IdPrefix, AlwaysOnline, MaxConnects,
            Username, Password, AllowUntrusted, Seed, Verbose,
        };
        root.SetAction(RunAsync);
        return root;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        if (!TryReadSettings(parse, out var device, out var fleet, out var error))
        {
            await Console.Error.WriteLineAsync($"error: {error}").ConfigureAwait(false);
            return 2;
        }

        // Ctrl+C / SIGTERM: sign out first, then exit 0, as the article's SIGINT handler does.
        using var shutdown = new ShutdownSignal(cancellationToken);
        if (fleet is not null)
        {
            using var devices = new DeviceFleet(fleet);
            await devices.RunAsync(shutdown.Token).ConfigureAwait(false);
        }
        else
        {
            Console.WriteLine($"STARTING {(device.Transport == DeviceTransport.Tcp ? "TCP" : "MQTT")} IOT DEVICE <{device.DeviceId}>");
            using ISimulatedDevice simulated = device.Transport == DeviceTransport.Tcp ? new TcpSimulatedDevice(device) : new SimulatedDevice(device);
            await simulated.RunAsync(shutdown.Token).ConfigureAwait(false);
        }

        return 0;
    }

    internal static bool TryReadSettings(ParseResult parse, out DeviceSettings device, out FleetSettings? fleet, out string? error)
    {
        device = null!;
        fleet = null;
        if (!BrokerAddress.TryParseDeviceBroker(parse.GetValue(Broker), out var broker, out error))
        {
            return false;
        }

        var transport = parse.GetValue(Transport) == "tcp" ? DeviceTransport.Tcp : DeviceTransport.Mqtt;
        System.Net.DnsEndPoint? server = null;
        if (transport == DeviceTransport.Tcp && !TryParseServer(parse.GetValue(Server), out server))
        {
            error = $"--server must be host:port with a port from 1 to 65535, not '{parse.GetValue(Server)}'";
            return false;
        }

        var interval = parse.GetValue(Interval);
        var online = parse.GetValue(Online);
        var devices = parse.GetValue(Devices);
        if (!double.IsFinite(interval) || interval < MinimumIntervalSeconds || interval > TimeSpan.FromDays(1).TotalSeconds)
        {
            error = $"--interval must be between {MinimumIntervalSeconds} and 86400 seconds";
            return false;
        }

        if (!double.IsFinite(online) || online < 0 || online > TimeSpan.FromDays(1).TotalSeconds)
        {
            error = "--online must be between 0 and 86400 seconds";
            return false;
        }

        if (devices is < 1)
        {
            error = "--devices must be at least 1";
            return false;
        }

        if (devices is not null && parse.GetResult(DeviceId) is { Implicit: false })
        {
            error = "--device-id names a single device; a fleet is named with --id-prefix";
            return false;
        }

        if (parse.GetValue(MaxConnects) < 1)
        {
            error = "--max-connects must be at least 1";
            return false;
        }

        device = new DeviceSettings
        {
            Broker = broker,
            Transport = transport,
            TcpServer = server,
            TcpTls = parse.GetValue(Tls),
            DeviceId = parse.GetValue(DeviceId)!,
            Topics = new TopicRoots(parse.GetValue(DataTopic)!, parse.GetValue(CommandRequestTopic)!, parse.GetValue(CommandResponseTopic)!, parse.GetValue(RegisterTopic)!),
            Interval = TimeSpan.FromSeconds(interval),
            OnlineWindow = TimeSpan.FromSeconds(online),
            Protocol = parse.GetValue(Protocol) == "3.1.1" ? MqttProtocolVersion.V311 : MqttProtocolVersion.V500,
            AlwaysOnline = parse.GetValue(AlwaysOnline),
            Username = parse.GetValue(Username) ?? NonEmpty(System.Environment.GetEnvironmentVariable("MQTT_USERNAME")),
            Password = parse.GetValue(Password) ?? NonEmpty(System.Environment.GetEnvironmentVariable("MQTT_PASSWORD")),
            AllowUntrustedCertificates = parse.GetValue(AllowUntrusted),
            RandomSeed = parse.GetValue(Seed),
            LogEachMessage = devices is null || parse.GetValue(Verbose),
        };

        if (devices is { } count)
        {
            fleet = new FleetSettings
            {
                Template = device,
                Devices = count,
                IdPrefix = parse.GetValue(IdPrefix)!,
                MaxConcurrentConnects = parse.GetValue(MaxConnects),
            };
        }

        error = null;
        return true;
    }

    private static bool TryParseServer(string? value, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out System.Net.DnsEndPoint? server)
    {
        server = null;
        var colon = value?.LastIndexOf(':') ?? -1;
        if (colon <= 0 || !int.TryParse(value.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            return false;
        }

        server = new System.Net.DnsEndPoint(value![..colon].Trim('[', ']'), port);
        return true;
    }

    private static Option<string> TopicOption(string name, string variable, string fallback, string description) => new(name)
    {
        Description = $"{description}; the device uses {{root}}/{{deviceId}} [env: {variable}]",
        DefaultValueFactory = _ => Environment(variable, fallback),
    };

    private static string Environment(string variable, string fallback) => NonEmpty(System.Environment.GetEnvironmentVariable(variable)) ?? fallback;

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
