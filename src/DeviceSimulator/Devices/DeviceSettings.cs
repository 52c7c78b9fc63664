using IotGateway.Protocol;
using MQTTnet.Formatter;

namespace DeviceSimulator.Devices;

// Everything one simulated device needs to know; the defaults are the article's.
internal sealed record DeviceSettings
{
    public const string DefaultDeviceId = "sim-iot-device-0001";

    public required BrokerAddress Broker { get; init; }

    public DeviceTransport Transport { get; init; } = DeviceTransport.Mqtt;

    // The article's TCP server (SERVER_HOST:SERVER_PORT), for the TCP transport; TcpTls wraps the connection in TLS.
    public System.Net.DnsEndPoint? TcpServer { get; init; }
    public bool TcpTls { get; init; }
    public string DeviceId { get; init; } = DefaultDeviceId;
    public TopicRoots Topics { get; init; } = new();
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(15);
    public TimeSpan OnlineWindow { get; init; } = TimeSpan.FromSeconds(5);
    public MqttProtocolVersion Protocol { get; init; } = MqttProtocolVersion.V500;

    // Connected permanently instead of the article's short windows: telemetry every interval, commands answered at once.
    public bool AlwaysOnline { get; init; }

    // Delay from the start to the first telemetry window; a fleet spreads its devices over one interval with it.
    // Null means one full interval, as the article's setInterval.
    public TimeSpan? FirstWindowDelay { get; init; }

    public string? Username { get; init; }
    public string? Password { get; init; }
    public bool AllowUntrustedCertificates { get; init; }

    // Same seed, same readings: reproducible runs for tests and benchmarks.
    public int? RandomSeed { get; init; }

    // Console lines for every message (the article's output); a fleet turns them off unless --verbose.
    public bool LogEachMessage { get; init; } = true;

    public DeviceTopics OwnTopics() => Topics.For(DeviceId);

    public string ServerDescription => Transport == DeviceTransport.Tcp
        ? $"{(TcpTls ? "tls" : "tcp")}://{TcpServer!.Host}:{TcpServer.Port}"
        : Broker.ToString();
}
