using System.Globalization;
using System.Text;

namespace IotGateway.Testing;

/// <summary>
/// A real Mosquitto 2.x process on a free loopback port, with a generated config, persistence
/// and log in its own temp directory. Stop, kill and restart it on the same port to test what
/// survives a broker restart. Dispose kills it and deletes the directory.
/// </summary>
/// <example>
/// <code>
/// await using var broker = await MosquittoBroker.StartAsync();
/// await using var device = await TestMqttClient.ConnectAsync(broker, "dev-1");
/// </code>
/// </example>
public sealed class MosquittoBroker : IAsyncDisposable
{
    private const string RunningMarker = " running";

    private static readonly string[] WellKnownBrokerPaths =
        ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto", "/usr/bin/mosquitto", "/snap/bin/mosquitto"];

    private static readonly Lazy<string?> LazyExecutablePath = new(FindBrokerExecutable);

    private readonly MosquittoBrokerOptions _options;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private int _tlsPort;
    private TestCertificateAuthority? _ca;
    private TestCertificateFiles? _serverCertificate;
    // A run that is cut short does not leave the broker behind: ChildProcess kills its children at exit.
    private ChildProcess? _process;
    private bool _disposed;

    private MosquittoBroker(MosquittoBrokerOptions options, string directory)
    {
        _options = options;
        DataDirectory = directory;
        LogPath = Path.Combine(directory, "mosquitto.log");
        ConfigPath = Path.Combine(directory, "mosquitto.conf");
    }

    /// <summary>The loopback address the listeners bind to.</summary>
    public string Host => "127.0.0.1";

    /// <summary>The plain MQTT listener's port.</summary>
    public int Port { get; private set; }

    /// <summary><c>mqtt://127.0.0.1:{Port}</c>.</summary>
    public string Url => string.Create(CultureInfo.InvariantCulture, $"mqtt://{Host}:{Port}");

    /// <summary>The TLS listener's port (only with <see cref="MosquittoBrokerOptions.Tls"/>).</summary>
    public int TlsPort => _options.Tls ? _tlsPort : throw new InvalidOperationException("The broker was started without Tls = true.");

    /// <summary><c>mqtts://127.0.0.1:{TlsPort}</c>.</summary>
    public string TlsUrl => string.Create(CultureInfo.InvariantCulture, $"mqtts://{Host}:{TlsPort}");

    /// <summary>The temp directory holding config, persistence database, log, password file and certificates.</summary>
    public string DataDirectory { get; }

    public string LogPath { get; }

    public string ConfigPath { get; }

    /// <summary>PEM of the test CA that signed the server certificate (only with TLS).</summary>
    public string CaCertificatePath => Ca.CertificatePath;

    /// <summary>The test CA certificate (public part), e.g. for MQTTnet's <c>WithTrustChain</c>.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2 CaCertificate => Ca.Certificate;

    public MosquittoBrokerOptions Options => _options;

    /// <summary>The running process's id, or null while stopped.</summary>
    public int? ProcessId => _process is { HasExited: false } p ? p.Id : null;

    public bool IsRunning => _process is { HasExited: false };

    private TestCertificateAuthority Ca =>
        _ca ?? throw new InvalidOperationException("The broker was started without Tls = true.");

    /// <summary>True when a mosquitto executable was found (MOSQUITTO_PATH, PATH, /usr/sbin/mosquitto, ...).</summary>
    public static bool IsInstalled => ExecutablePath is not null;

    /// <summary>The mosquitto executable used, or null when none is installed.</summary>
    public static string? ExecutablePath => LazyExecutablePath.Value;

    public static string NotInstalledMessage =>
        "Mosquitto is not installed: no 'mosquitto' executable in MOSQUITTO_PATH, on PATH or in "
        + string.Join(", ", WellKnownBrokerPaths)
        + ". Install it (apt-get install mosquitto / brew install mosquitto) to run the tests against a real broker.";

    /// <summary>
    /// Writes the config (and password file, certificates), starts mosquitto and returns once the
    /// broker says it is running and its listeners accept TCP connections.
    /// </summary>
    public static async Task<MosquittoBroker> StartAsync(MosquittoBrokerOptions? options = null, CancellationToken ct = default)
    {
        options ??= new MosquittoBrokerOptions();
        if (!IsInstalled)
        {
            throw new InvalidOperationException(NotInstalledMessage);
        }

        if (!options.Tls && (options.RequireClientCertificate || options.UseIdentityAsUsername))
        {
            throw new ArgumentException("RequireClientCertificate and UseIdentityAsUsername need Tls = true.", nameof(options));
        }

        var directory = Directory.CreateTempSubdirectory("iotgw-mosquitto-").FullName;
        var broker = new MosquittoBroker(options, directory);
        try
        {
            await broker.PrepareFilesAsync(ct).ConfigureAwait(false);

            // The free port may be taken by someone else between our probe and mosquitto's bind:
            // then mosquitto exits with "Address already in use" and we try another port.
            const int attempts = 5;
            for (var attempt = 1; ; attempt++)
            {
                broker.Port = FreePort.OnLoopback();
                if (options.Tls)
                {
                    do
                    {
                        broker._tlsPort = FreePort.OnLoopback();
                    }
                    while (broker._tlsPort == broker.Port);
                }

                await File.WriteAllTextAsync(broker.ConfigPath, broker.BuildConfig(), ct).ConfigureAwait(false);
                var deadline = DateTime.UtcNow + options.StartTimeout;
                if (await broker.LaunchAsync(deadline, ct).ConfigureAwait(false))
                {
                    return broker;
                }

                if (attempt == attempts)
                {
                    throw new InvalidOperationException(
                        $"Mosquitto could not bind a free port after {attempts} attempts.\n{broker.Diagnostics()}");
                }
            }
        }
        catch
        {
            await broker.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Graceful stop: SIGTERM (mosquitto saves its persistence database), then a kill after <see cref="MosquittoBrokerOptions.StopTimeout"/>.</summary>
    public async Task StopAsync()
    {
        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            await StopCoreAsync(graceful: true).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>SIGKILL: nothing is saved beyond the last autosave (a crash).</summary>
    public async Task KillAsync()
    {
        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            await StopCoreAsync(graceful: false).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>
    /// Starts the stopped broker again on the same port(s) with the same config and persistence
    /// directory. Retries while the port is still held (e.g. a client reconnecting or TIME_WAIT).
    /// </summary>
    public async Task StartAgainAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (IsRunning)
            {
                throw new InvalidOperationException("The broker is still running: StopAsync or KillAsync first.");
            }

            var deadline = DateTime.UtcNow + _options.StartTimeout;
            while (!await LaunchAsync(deadline, ct).ConfigureAwait(false))
            {
                if (DateTime.UtcNow >= deadline)
                {
                    throw new TimeoutException(
                        $"Mosquitto could not bind port {Port} again within {_options.StartTimeout.TotalSeconds:0.#} s.\n{Diagnostics()}");
                }

                await Task.Delay(100, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>The whole mosquitto log so far (all runs of this broker).</summary>
    public string ReadLog()
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return reader.ReadToEnd();
        }
        catch (FileNotFoundException)
        {
            return "";
        }
        catch (DirectoryNotFoundException)
        {
            return "";
        }
    }

    /// <summary>Issues a client certificate signed by the broker's test CA (TLS only).</summary>
    public TestCertificateFiles CreateClientCertificate(string cn) => Ca.CreateClientCertificate(cn);

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _lifecycle.WaitAsync().ConfigureAwait(false);
        try
        {
            await StopCoreAsync(graceful: false).ConfigureAwait(false);
        }
        finally
        {
            _lifecycle.Release();
            _ca?.Dispose();
            TryDeleteDirectory(DataDirectory);
        }
    }

    public override string ToString() => $"mosquitto {Url} (pid {ProcessId?.ToString(CultureInfo.InvariantCulture) ?? "stopped"}, dir {DataDirectory})";

    private async Task PrepareFilesAsync(CancellationToken ct)
    {
        if (_options.Users.Count > 0)
        {
            var tool = FindTool("mosquitto_passwd")
                ?? throw new InvalidOperationException("mosquitto_passwd not found (needed for MosquittoBrokerOptions.Users).");
            var passwordFile = Path.Combine(DataDirectory, "passwords");
            var first = true;
            foreach (var (username, password) in _options.Users)
            {
                var arguments = new List<string>();
                if (first)
                {
                    arguments.Add("-c");
                }

                arguments.AddRange(["-b", passwordFile, username, password]);
                await RunToolAsync(tool, arguments, ct).ConfigureAwait(false);
                first = false;
            }
        }

        if (_options.Tls)
        {
            _ca = TestCertificateAuthority.Create(Path.Combine(DataDirectory, "tls"));
            _serverCertificate = _ca.CreateServerCertificate();
        }
    }

    private string BuildConfig()
    {
        var c = new StringBuilder();
        void Line(string text) => c.Append(text).Append('\n');

        Line("# generated by IotGateway.Testing.MosquittoBroker");
        Line("per_listener_settings false");
        // Started as root, mosquitto would switch to the 'mosquitto' user, which cannot read this
        // private temp directory. As another user this line has no effect.
        Line("user root");
        var allowAnonymous = _options.AllowAnonymous ?? _options.Users.Count == 0;
        Line($"allow_anonymous {(allowAnonymous ? "true" : "false")}");
        if (_options.Users.Count > 0)
        {
            Line($"password_file {Path.Combine(DataDirectory, "passwords")}");
        }

        Line("set_tcp_nodelay true");
        Line($"persistence {(_options.Persistence ? "true" : "false")}");
        Line($"persistence_location {DataDirectory}{Path.DirectorySeparatorChar}");
        Line($"autosave_interval {_options.AutosaveIntervalSeconds.ToString(CultureInfo.InvariantCulture)}");
        Line("autosave_on_changes false");
        Line($"max_queued_messages {_options.MaxQueuedMessages.ToString(CultureInfo.InvariantCulture)}");
        Line($"max_inflight_messages {_options.MaxInflightMessages.ToString(CultureInfo.InvariantCulture)}");
        Line("max_connections -1");
        Line($"log_dest file {LogPath}");
        Line("log_type error");
        Line("log_type warning");
        Line("log_type notice");
        Line("log_type information");
        Line("log_timestamp true");
        Line("log_timestamp_format %Y-%m-%dT%H:%M:%S");
        Line($"connection_messages {(_options.ConnectionMessages ? "true" : "false")}");

        if (_options.Tls)
        {
            var server = _serverCertificate!;
            Line("");
            Line($"listener {_tlsPort.ToString(CultureInfo.InvariantCulture)} {Host}");
            Line($"cafile {Ca.CertificatePath}");
            Line($"certfile {server.CertificatePath}");
            Line($"keyfile {server.KeyPath}");
            Line($"require_certificate {(_options.RequireClientCertificate ? "true" : "false")}");
            if (_options.UseIdentityAsUsername)
            {
                Line("use_identity_as_username true");
            }
        }

        Line("");
        Line($"listener {Port.ToString(CultureInfo.InvariantCulture)} {Host}");

        if (!string.IsNullOrWhiteSpace(_options.ExtraConfig))
        {
            Line("");
            Line("# ExtraConfig");
            Line(_options.ExtraConfig.Replace("\r\n", "\n", StringComparison.Ordinal));
        }

        return c.ToString();
    }

    /// <summary>Starts the process and waits until it is ready. False when the port was in use.</summary>
    private async Task<bool> LaunchAsync(DateTime deadline, CancellationToken ct)
    {
        var logOffset = new FileInfo(LogPath) is { Exists: true } f ? f.Length : 0;
        var process = ChildProcess.Start("mosquitto", ExecutablePath!, ["-c", ConfigPath], DataDirectory);
        _process = process;

        while (true)
        {
            if (process.HasExited)
            {
                await process.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
                var text = ReadLogFrom(logOffset) + process.OutputTail();
                var exitCode = process.ExitCode;
                var diagnostics = Diagnostics(logOffset);
                await process.DisposeAsync().ConfigureAwait(false);
                _process = null;
                if (text.Contains("Address already in use", StringComparison.OrdinalIgnoreCase))
                {
                    return false;
                }

                throw new InvalidOperationException($"Mosquitto exited during start-up with code {exitCode}.\n{diagnostics}");
            }

            if (ReadLogFrom(logOffset).Contains(RunningMarker, StringComparison.Ordinal)
                && await FreePort.AcceptsConnectionsAsync(Port, ct).ConfigureAwait(false)
                && (!_options.Tls || await FreePort.AcceptsConnectionsAsync(_tlsPort, ct).ConfigureAwait(false))
                && !process.HasExited)
            {
                return true;
            }

            if (DateTime.UtcNow >= deadline)
            {
                var diagnostics = Diagnostics(logOffset);
                await StopCoreAsync(graceful: false).ConfigureAwait(false);
                throw new TimeoutException(
                    $"Mosquitto did not become ready on {Host}:{Port} within {_options.StartTimeout.TotalSeconds:0.#} s.\n{diagnostics}");
            }

            await Task.Delay(20, ct).ConfigureAwait(false);
        }
    }

    private async Task StopCoreAsync(bool graceful)
    {
        var process = _process;
        if (process is null)
        {
            return;
        }

        try
        {
            if (graceful)
            {
                // SIGTERM: mosquitto saves its persistence database; killed if it takes longer than StopTimeout.
                await process.StopAsync(_options.StopTimeout).ConfigureAwait(false);
            }
        }
        finally
        {
            await process.DisposeAsync().ConfigureAwait(false);
            _process = null;
        }
    }

    private string ReadLogFrom(long offset)
    {
        var log = ReadLog();
        // The log is ASCII in practice; treat the offset as a character index, clamped.
        return offset < log.Length ? log[(int)offset..] : offset == 0 ? log : "";
    }

    private string Diagnostics(long logOffset = 0) =>
        $"--- config {ConfigPath} ---\n{SafeRead(ConfigPath)}--- log (this run) ---\n{ReadLogFrom(logOffset)}--- stdout/stderr ---\n{_process?.OutputTail()}";

    private static string SafeRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static async Task RunToolAsync(string tool, IEnumerable<string> arguments, CancellationToken ct)
    {
        var (exitCode, output) = await ExternalTool.RunAsync(tool, arguments, ct).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(tool)} failed with exit code {exitCode}: {output}");
        }
    }

    private static void TryDeleteDirectory(string directory)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }

                return;
            }
            catch (IOException)
            {
                Thread.Sleep(50);
            }
            catch (UnauthorizedAccessException)
            {
                return;
            }
        }
    }

    private static string? FindBrokerExecutable()
    {
        if (Environment.GetEnvironmentVariable("MOSQUITTO_PATH") is { Length: > 0 } configured)
        {
            return File.Exists(configured) ? configured : null;
        }

        return FindOnPath("mosquitto") ?? WellKnownBrokerPaths.FirstOrDefault(File.Exists);
    }

    /// <summary>A tool of Mosquitto's (mosquitto_passwd, mosquitto_sub, mosquitto_pub): on PATH or next to the broker.</summary>
    public static string? FindTool(string name)
    {
        var onPath = FindOnPath(name);
        if (onPath is not null)
        {
            return onPath;
        }

        var candidates = new List<string>();
        if (ExecutablePath is { } broker && Path.GetDirectoryName(broker) is { } brokerDir)
        {
            candidates.Add(Path.Combine(brokerDir, name));
            candidates.Add(Path.Combine(brokerDir, "..", "bin", name));
        }

        candidates.AddRange(new[] { "/usr/bin/", "/usr/local/bin/", "/opt/homebrew/bin/" }.Select(dir => dir + name));
        return candidates.FirstOrDefault(File.Exists);
    }

    private static string? FindOnPath(string name)
    {
        var fileName = OperatingSystem.IsWindows() ? name + ".exe" : name;
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, fileName);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
