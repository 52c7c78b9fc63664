using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using IotGateway.Ingest;
using IotGateway.Mqtt;
using IotGateway.Observability;

namespace IotGateway.Tcp;

// The TCP listener for the article's TCP devices (Tcp:Port or SERVER_PORT; off when neither is set). It binds at
// start, so a port already taken stops the gateway like any other, and accepts once the database is open.
public sealed partial class TcpDeviceListener(
    IOptions<TcpOptions> options,
    IOptions<IngestOptions> ingestOptions,
    TcpDevices devices,
    IngestQueue ingest,
    DatabaseStartup database,
    IServiceScopeFactory scopes,
    IOptions<MqttOptions> mqttOptions,
    GatewayMetrics metrics,
    TimeProvider time,
    ILoggerFactory loggers) : BackgroundService
{
    private static readonly TimeSpan RefusalLogInterval = TimeSpan.FromSeconds(10);
    private const int SendBufferBytes = 64 * 1024;

    private readonly TcpOptions _options = options.Value;
    private readonly string _instance = mqttOptions.Value.ClientId;
    private readonly ILogger _logger = loggers.CreateLogger<TcpDeviceListener>();
    private readonly Lock _sync = new();
    private readonly HashSet<Task> _running = [];
    private Socket? _listener;
    private SslServerAuthenticationOptions? _tls;
    private long _refused;
    private DateTimeOffset _lastRefusalLog;

    public bool Enabled => _options.Port is not null;

    // The port it listens on (the configured one); null when off.
    public int? Port => (_listener?.LocalEndPoint as IPEndPoint)?.Port;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.Port is not { } port)
        {
            // No listener; the devices this instance held before it stopped are still signed out (ExecuteAsync).
            return base.StartAsync(cancellationToken);
        }

        _tls = _options.Tls.Enabled ? new SslServerAuthenticationOptions { ServerCertificate = LoadCertificate(_options.Tls) } : null;
        var address = IPAddress.Parse(_options.BindAddress);
        var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(address, port));
            listener.Listen(512);
        }
        catch (SocketException ex)
        {
            listener.Dispose();
            throw new InvalidOperationException(
                $"The TCP device listener cannot listen on {_options.BindAddress}:{port} ({ex.Message}). Set Tcp:Port (SERVER_PORT) to a free port.", ex);
        }

        _listener = listener;
        LogListening(_options.BindAddress, port, _tls is null ? "plain TCP" : "TLS");
        if (!IPAddress.IsLoopback(address))
        {
            LogExposed(_options.BindAddress, port);
        }

        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await database.Ready.WaitAsync(stoppingToken);
            await SignOutLeftoversAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        if (_listener is not { } listener)
        {
            return;
        }

        using var slots = new SemaphoreSlim(_options.MaxConnections, _options.MaxConnections);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                var socket = await listener.AcceptAsync(stoppingToken);
                if (!slots.Wait(0))
                {
                    socket.Dispose();
                    NoteRefusal();
                    continue;
                }

                socket.NoDelay = true;
                // One command at a time goes to a device: a small send buffer bounds what a device that does not read
                // its socket holds in the kernel, and makes its write time out (TcpDeviceConnection) soon.
                socket.SendBufferSize = SendBufferBytes;
                Track(RunConnectionAsync(socket, slots, stoppingToken));
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            listener.Dispose();
            Task[] running;
            lock (_sync)
            {
                running = [.. _running];
            }

            // Each one signs its device out on the way; the ingest writer stops after this service and stores it.
            await Task.WhenAll(running);
        }
    }

    // TCP devices the database has as signed in on this instance, from before it stopped (or crashed): their connections
    // are gone, so they are signed out, through the same ingest as every presence change.
    private async Task SignOutLeftoversAsync(CancellationToken cancellationToken)
    {
        List<string> leftovers;
        await using (var scope = scopes.CreateAsyncScope())
        {
            leftovers = await scope.ServiceProvider.GetRequiredService<GatewayDbContext>().Devices.AsNoTracking()
                .Where(d => d.Transport == DeviceTransports.Tcp && d.SignedIn && d.TcpInstance == _instance)
                .Select(d => d.Id).ToListAsync(cancellationToken);
        }

        foreach (var deviceId in leftovers)
        {
            await ingest.Writer.WriteAsync(InboundMessage.FromTcp(TopicKind.Register, deviceId, "SIGN_OUT"u8.ToArray(), time.GetUtcNow()), cancellationToken);
        }

        if (leftovers.Count > 0)
        {
            LogLeftoversSignedOut(leftovers.Count);
        }
    }

    private async Task RunConnectionAsync(Socket socket, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        await Task.Yield();
        var connection = new TcpDeviceConnection(socket, _options, ingestOptions.Value.MaxPayloadBytes, devices, ingest, metrics, time, loggers.CreateLogger<TcpDeviceConnection>());
        try
        {
            await connection.RunAsync(_tls, stoppingToken);
        }
        catch (Exception ex)
        {
            // Never let one connection's failure reach the accept loop.
            LogConnectionFailed(connection.Remote, ex.GetBaseException().Message);
        }
        finally
        {
            await connection.DisposeAsync();
            slots.Release();
        }
    }

    private void Track(Task connection)
    {
        lock (_sync)
        {
            _running.Add(connection);
        }

        connection.ContinueWith(done =>
        {
            lock (_sync)
            {
                _running.Remove(done);
            }
        }, TaskScheduler.Default);
    }

    // At most one line per interval however many connections are refused, with how many there were.
    private void NoteRefusal()
    {
        var refused = Interlocked.Increment(ref _refused);
        metrics.MessageRejected("tcp-connection-limit");
        var now = time.GetUtcNow();
        if (now - _lastRefusalLog >= RefusalLogInterval)
        {
            _lastRefusalLog = now;
            LogConnectionLimit(_options.MaxConnections, refused);
        }
    }

    private static X509Certificate2 LoadCertificate(TcpTlsOptions tls) =>
        string.IsNullOrEmpty(tls.KeyFile)
            ? X509CertificateLoader.LoadPkcs12FromFile(tls.CertificateFile!, tls.Password)
            : X509Certificate2.CreateFromPemFile(tls.CertificateFile!, tls.KeyFile);

    [LoggerMessage(Level = LogLevel.Information, Message = "TCP devices: listening on {Address}:{Port} ({Security})")]
    private partial void LogListening(string address, int port, string security);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The TCP device port listens on {Address}:{Port}, beyond this machine. The article's TCP protocol has no credentials: anyone who reaches the port can speak for any device. Restrict it with a firewall, or use MQTT devices with credentials.")]
    private partial void LogExposed(string address, int port);

    [LoggerMessage(Level = LogLevel.Warning, Message = "TCP connection limit reached (Tcp:MaxConnections = {Limit}): new connections are closed ({Refused} so far)")]
    private partial void LogConnectionLimit(int limit, long refused);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} TCP devices signed in before this instance stopped are signed out: their connections are gone")]
    private partial void LogLeftoversSignedOut(int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "TCP connection from {Remote} failed: {Reason}")]
    private partial void LogConnectionFailed(string remote, string reason);
}
