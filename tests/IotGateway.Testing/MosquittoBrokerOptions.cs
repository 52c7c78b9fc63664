namespace IotGateway.Testing;

/// <summary>
/// How <see cref="MosquittoBroker"/> configures the broker it starts. Every property has a default
/// that suits most tests: anonymous access, persistence on, a plain listener on a free port.
/// </summary>
public sealed record MosquittoBrokerOptions
{
    /// <summary>
    /// Username/password pairs written to a password file (<c>mosquitto_passwd</c>). When any are
    /// given, anonymous clients are refused unless <see cref="AllowAnonymous"/> says otherwise.
    /// </summary>
    public IReadOnlyList<(string Username, string Password)> Users { get; init; } = [];

    /// <summary>Overrides the default (anonymous allowed exactly when <see cref="Users"/> is empty).</summary>
    public bool? AllowAnonymous { get; init; }

    /// <summary>
    /// Adds a second listener with TLS on <see cref="MosquittoBroker.TlsPort"/>, using a freshly
    /// generated test CA (<see cref="MosquittoBroker.CaCertificatePath"/>) and a server certificate
    /// for 127.0.0.1, ::1 and localhost.
    /// </summary>
    public bool Tls { get; init; }

    /// <summary>TLS listener only: clients must present a certificate signed by the test CA
    /// (see <see cref="MosquittoBroker.CreateClientCertificate"/>).</summary>
    public bool RequireClientCertificate { get; init; }

    /// <summary>TLS listener only: the client certificate's CN becomes the MQTT username.</summary>
    public bool UseIdentityAsUsername { get; init; }

    /// <summary>Sessions, subscriptions, retained and queued messages survive a restart. Default on.</summary>
    public bool Persistence { get; init; } = true;

    /// <summary>Seconds between saves of the in-memory database (only matters for <see cref="MosquittoBroker.KillAsync"/>;
    /// a graceful stop always saves).</summary>
    public int AutosaveIntervalSeconds { get; init; } = 1;

    /// <summary>Per-client queue above the in-flight window (mosquitto's default is 1000).</summary>
    public int MaxQueuedMessages { get; init; } = 1_000_000;

    /// <summary>Outgoing QoS 1/2 messages in flight per client; 0 = no limit (mosquitto's default is 20).</summary>
    public int MaxInflightMessages { get; init; }

    /// <summary>
    /// Text appended verbatim to the end of the generated config. It follows the plain listener, so
    /// listener-scoped lines apply to that listener unless the text opens its own <c>listener</c>
    /// (use <see cref="FreePort.OnLoopback"/> for its port). Do not redirect or disable the
    /// file log: start-up waits for the "running" line in it.
    /// </summary>
    public string? ExtraConfig { get; init; }

    /// <summary>A log line for every connect and disconnect. Default on; off where thousands of clients would fill the log.</summary>
    public bool ConnectionMessages { get; init; } = true;

    /// <summary>How long start (and restart) may take before it fails.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a graceful stop waits for the process to exit before it is killed.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(5);
}
