using IotGateway.Protocol;
using System.ComponentModel.DataAnnotations;

namespace IotGateway.Mqtt;

public sealed class MqttOptions
{
    public const string Section = "Mqtt";

    // "embedded" runs the in-process broker; otherwise mqtt://, mqtts://, ws:// or wss:// with optional user:pass@.
    [Required]
    public string Broker { get; set; } = BrokerAddress.EmbeddedKeyword;

    // The gateway's MQTT client id: the name of its persistent session on the broker.
    [Required]
    [StringLength(128, MinimumLength = 1)]
    public string ClientId { get; set; } = "iot-gateway";

    // Several gateway instances on one broker: when set, readings and command answers are subscribed as
    // $share/{group}/…, so the broker splits them between the instances of the group. Each instance keeps its own
    // ClientId. Empty: plain subscriptions (one instance).
    [StringLength(64)]
    public string? SharedSubscriptionGroup { get; set; }

    // MQTT 5 session expiry: how long the broker keeps the gateway's session and queues while it is away.
    [Range(1, uint.MaxValue)]
    public long SessionExpirySeconds { get; set; } = 7 * 24 * 3600;

    [RegularExpression("^(5|3\\.1\\.1)$", ErrorMessage = "Mqtt:ProtocolVersion must be \"5\" or \"3.1.1\".")]
    public string ProtocolVersion { get; set; } = "5";

    [Range(1, 3600)]
    public int KeepAliveSeconds { get; set; } = 15;

    [Range(1, 120)]
    public int ConnectTimeoutSeconds { get; set; } = 10;

    // How many unacknowledged messages the broker may have in flight to us (MQTT 5 Receive Maximum).
    [Range(1, 65535)]
    public int ReceiveMaximum { get; set; } = 16384;

    // Our own cap on concurrent QoS 2 publishes (MQTTnet does not enforce the broker's Receive Maximum).
    [Range(1, 65535)]
    public int MaxInflightPublishes { get; set; } = 64;

    [Range(1, 300)]
    public int PublishTimeoutSeconds { get; set; } = 10;

    [Range(0.05, 60)]
    public double ReconnectMinDelaySeconds { get; set; } = 0.5;

    [Range(0.1, 3600)]
    public double ReconnectMaxDelaySeconds { get; set; } = 30;

    public string? Username { get; set; }

    public string? Password { get; set; }

    public TlsOptions Tls { get; set; } = new();

    [ValidateObjectMembers]
    public TopicOptions Topics { get; set; } = new();

    [ValidateObjectMembers]
    public EmbeddedBrokerOptions Embedded { get; set; } = new();

    public bool UsesMqtt5 => ProtocolVersion == "5";
}

// TLS to the broker (mqtts:// and wss://). The server certificate is checked against the system's trust
// store, or against CaFile for a private CA; a certificate error refuses the connection.
public sealed class TlsOptions
{
    // PEM file with the CA certificate(s) that signed the broker's certificate.
    public string? CaFile { get; set; }

    // PEM client certificate and its key, for brokers that require one (mutual TLS).
    public string? ClientCertificate { get; set; }

    public string? ClientKey { get; set; }

    // Development only: accept any server certificate. Logged as a warning when the gateway starts.
    public bool DangerousAcceptAnyServerCertificate { get; set; }
}

public sealed class BrokerUser
{
    [Required]
    public string Username { get; set; } = "";

    [Required]
    public string Password { get; set; } = "";
}

public sealed class TopicOptions
{
    [Required]
    public string Data { get; set; } = TopicRoots.DefaultData;

    [Required]
    public string CommandRequest { get; set; } = TopicRoots.DefaultCommandRequest;

    [Required]
    public string CommandResponse { get; set; } = TopicRoots.DefaultCommandResponse;

    [Required]
    public string Register { get; set; } = TopicRoots.DefaultRegister;
}

public sealed class EmbeddedBrokerOptions
{
    public const string Loopback = "127.0.0.1";

    [Range(1, 65535)]
    public int Port { get; set; } = 1883;

    // The address devices reach it on. Loopback by default, as Mosquitto 2 does: reaching it from another machine
    // (or through a container's published port) is a decision, made by setting 0.0.0.0 or one interface's address.
    [Required]
    public string BindAddress { get; set; } = Loopback;

    // Messages the in-process broker queues per client (online or offline) before it drops the oldest.
    [Range(1, 10_000_000)]
    public int MaxPendingMessagesPerClient { get; set; } = 100_000;

    // Topic filters one client may hold; a SUBSCRIBE beyond it is refused (SUBACK 0x97). Each is kept in the database
    // and matched against every message, so a client cannot grow the broker's work without bound.
    [Range(1, 1_000_000)]
    public int MaxSubscriptionsPerClient { get; set; } = 1000;

    // How often changes to the sessions (subscriptions, queued messages) are written to the database. A crash loses
    // at most the changes of the last interval; a clean stop writes everything.
    [Range(10, 60_000)]
    public int PersistIntervalMilliseconds { get; set; } = 1000;

    // Where retained messages (the devices' SIGN_IN/SIGN_OUT) are kept across restarts; relative to the working directory.
    [Required]
    public string RetainedMessagesFile { get; set; } = "data/retained-messages.json";

    // When not empty, devices must connect with one of these; anonymous connections are refused.
    [ValidateEnumeratedItems]
    public List<BrokerUser> Users { get; set; } = [];
}

// Checks what attributes cannot: the broker URL parses and the topic prefixes are usable.
public sealed class MqttOptionsValidator : IValidateOptions<MqttOptions>
{
    public ValidateOptionsResult Validate(string? name, MqttOptions options)
    {
        var failures = new List<string>();
        if (!BrokerAddress.TryParse(options.Broker, out _, out var brokerError))
        {
            failures.Add($"Mqtt:Broker (BROKER): {brokerError}");
        }

        var prefixes = new Dictionary<string, string>
        {
            ["Mqtt:Topics:Data (DATA_TOPIC)"] = options.Topics.Data,
            ["Mqtt:Topics:CommandRequest (CMD_REQ_TOPIC)"] = options.Topics.CommandRequest,
            ["Mqtt:Topics:CommandResponse (CMD_RESP_TOPIC)"] = options.Topics.CommandResponse,
            ["Mqtt:Topics:Register (REGISTER_TOPIC)"] = options.Topics.Register,
        };
        foreach (var (key, prefix) in prefixes)
        {
            if (TopicLayout.ValidatePrefix(prefix) is { } error)
            {
                failures.Add($"{key}: {error}");
            }
        }

        if (!string.IsNullOrEmpty(options.SharedSubscriptionGroup))
        {
            if (TopicLayout.ValidateGroup(options.SharedSubscriptionGroup) is { } groupError)
            {
                failures.Add($"Mqtt:SharedSubscriptionGroup: {groupError}");
            }

            if (BrokerAddress.TryParse(options.Broker, out var address, out _) && address.IsEmbedded)
            {
                failures.Add("Mqtt:SharedSubscriptionGroup: the embedded broker has no shared subscriptions; run several gateways against Mosquitto or a clustered broker.");
            }
        }

        if (prefixes.Values.Distinct(StringComparer.Ordinal).Count() != prefixes.Count)
        {
            failures.Add("Mqtt:Topics: the four topic prefixes must be different from each other.");
        }

        foreach (var (key, path) in new[] { ("Mqtt:Tls:CaFile", options.Tls.CaFile), ("Mqtt:Tls:ClientCertificate", options.Tls.ClientCertificate),
            ("Mqtt:Tls:ClientKey", options.Tls.ClientKey) })
        {
            if (!string.IsNullOrEmpty(path) && !File.Exists(path))
            {
                failures.Add($"{key}: the file '{path}' does not exist.");
            }
        }

        if (string.IsNullOrEmpty(options.Tls.ClientCertificate) != string.IsNullOrEmpty(options.Tls.ClientKey))
        {
            failures.Add("Mqtt:Tls:ClientCertificate and Mqtt:Tls:ClientKey go together: give both or neither.");
        }

        if (!System.Net.IPAddress.TryParse(options.Embedded.BindAddress, out _))
        {
            failures.Add($"Mqtt:Embedded:BindAddress: '{options.Embedded.BindAddress}' is not an IP address (127.0.0.1 for this machine only, 0.0.0.0 for every IPv4 interface).");
        }

        if (options.ReconnectMaxDelaySeconds < options.ReconnectMinDelaySeconds)
        {
            failures.Add("Mqtt:ReconnectMaxDelaySeconds must not be smaller than Mqtt:ReconnectMinDelaySeconds.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

[OptionsValidator]
public sealed partial class MqttOptionsAttributeValidator : IValidateOptions<MqttOptions>;
