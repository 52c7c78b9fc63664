using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.Packets;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IotGateway.Mqtt;

// MQTTnet's in-process broker, run when Mqtt:Broker is "embedded" so a fresh clone works with nothing
// installed. It keeps sessions in memory only; retained messages (the devices' presence) are saved to a
// file so they survive a restart.
public sealed partial class EmbeddedBroker(IOptions<MqttOptions> options, ILogger<EmbeddedBroker> logger) : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan SaveDelay = TimeSpan.FromSeconds(1);

    private readonly MqttOptions _options = options.Value;
    private readonly SemaphoreSlim _saveLock = new(1, 1);
    private MqttServer? _server;
    private int _saveScheduled;
    private readonly Lock _stopSync = new();
    private Task? _stopped;

    // The gateway's own client logs in with these when device credentials are required.
    public (string Username, string Password) InternalCredentials { get; } =
        ($"iot-gateway-internal-{Guid.NewGuid():N}", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));

    public bool Enabled => BrokerAddress.TryParse(_options.Broker, out var address, out _) && address.IsEmbedded;

    public int Port => _options.Embedded.Port;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!Enabled)
        {
            return;
        }

        var serverOptions = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointPort(_options.Embedded.Port)
            .WithPersistentSessions()
            .WithMaxPendingMessagesPerClient(_options.Embedded.MaxPendingMessagesPerClient)
            .Build();
        _server = new MqttServerFactory().CreateMqttServer(serverOptions);
        _server.ValidatingConnectionAsync += ValidateConnectionAsync;
        _server.LoadingRetainedMessageAsync += LoadRetainedMessagesAsync;
        _server.RetainedMessageChangedAsync += _ => ScheduleSave();
        _server.RetainedMessagesClearedAsync += _ => ScheduleSave();
        try
        {
            await _server.StartAsync();
        }
        catch (Exception ex)
        {
            _server.Dispose();
            _server = null;
            throw new InvalidOperationException(
                $"The embedded MQTT broker cannot listen on port {_options.Embedded.Port} ({ex.GetBaseException().Message}). " +
                "Set Mqtt:Embedded:Port to a free port, or BROKER to an external broker such as mqtt://localhost:1883.", ex);
        }

        LogStarted(_options.Embedded.Port);
    }

    // A host can stop it twice (WebApplication.RunAsync and a test host both do): the second call, and disposal,
    // wait for the first stop to end. Disposing the server while it still closes its listeners corrupted
    // MQTTnet's listener list (InvalidOperationException: Collection was modified).
    public Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not { IsStarted: true } server)
        {
            return Task.CompletedTask;
        }

        lock (_stopSync)
        {
            return _stopped ??= StopServerAsync(server);
        }
    }

    private async Task StopServerAsync(MqttServer server)
    {
        await SaveRetainedMessagesAsync();
        try
        {
            await server.StopAsync(new MqttServerStopOptions());
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            // MQTTnet 5.2 can trip over its own client list while closing connections; the process is stopping anyway.
            LogStopFailed(ex.Message);
        }
    }

    // The save lock is deliberately not disposed: a host can dispose services while a second StopAsync
    // (WebApplication.RunAsync and a test host both stop it) is still saving.
    public async ValueTask DisposeAsync()
    {
        Task? stopped;
        lock (_stopSync)
        {
            stopped = _stopped;
        }

        if (stopped is not null)
        {
            await stopped.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        try
        {
            _server?.Dispose();
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            LogStopFailed(ex.Message);
        }
    }

    // MQTT 3.1.1 lets a clean-session client send an empty id (mosquitto_pub does) and the broker must assign
    // one [MQTT-3.1.3-6]; MQTTnet 5.2 assigns ids only under MQTT 5 and refuses the rest. The CONNECT packet is
    // not public on the event, so we set its id through the (pinned) field; a test guards this.
    private static readonly FieldInfo? ConnectPacketField =
        typeof(ValidatingConnectionEventArgs).GetField("_connectPacket", BindingFlags.NonPublic | BindingFlags.Instance);

    private Task ValidateConnectionAsync(ValidatingConnectionEventArgs e)
    {
        if (_options.Embedded.Users.Count > 0 && !IsKnownUser(e.UserName, e.Password))
        {
            e.ReasonCode = MqttConnectReasonCode.BadUserNameOrPassword;
            LogRefused(LogText.Printable(e.ClientId, 128), e.UserName is null ? "(none)" : LogText.Printable(e.UserName, 128));
            return Task.CompletedTask;
        }

        if (string.IsNullOrEmpty(e.ClientId) && e.CleanSession == true && ConnectPacketField?.GetValue(e) is MqttConnectPacket packet)
        {
            packet.ClientId = $"auto-{Guid.NewGuid():N}";
        }

        return Task.CompletedTask;
    }

    private bool IsKnownUser(string? username, string? password)
    {
        var presented = Encoding.UTF8.GetBytes($"{username}\n{password}");
        var known = _options.Embedded.Users.Select(u => $"{u.Username}\n{u.Password}").Append($"{InternalCredentials.Username}\n{InternalCredentials.Password}");
        var match = false;
        foreach (var candidate in known)
        {
            // Every candidate, in constant time per comparison of equal-length hashes.
            match |= CryptographicOperations.FixedTimeEquals(SHA256.HashData(presented), SHA256.HashData(Encoding.UTF8.GetBytes(candidate)));
        }

        return match;
    }

    private async Task LoadRetainedMessagesAsync(LoadingRetainedMessagesEventArgs e)
    {
        var path = RetainedMessagesPath();
        if (!File.Exists(path))
        {
            return;
        }

        try
        {
            await using var file = File.OpenRead(path);
            var stored = await JsonSerializer.DeserializeAsync<List<StoredRetainedMessage>>(file) ?? [];
            e.LoadedRetainedMessages = stored.Select(m => new MqttApplicationMessageBuilder()
                .WithTopic(m.Topic)
                .WithPayload(m.Payload)
                .WithRetainFlag()
                .WithQualityOfServiceLevel(m.Qos)
                .Build()).ToList();
            LogRetainedLoaded(e.LoadedRetainedMessages.Count, path);
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            LogRetainedLoadFailed(path, ex.Message);
        }
    }

    // Coalesces a burst of sign-ins into one write.
    private Task ScheduleSave()
    {
        if (Interlocked.Exchange(ref _saveScheduled, 1) == 0)
        {
            _ = Task.Delay(SaveDelay).ContinueWith(_ => SaveRetainedMessagesAsync(), TaskScheduler.Default);
        }

        return Task.CompletedTask;
    }

    private async Task SaveRetainedMessagesAsync()
    {
        if (_server is not { IsStarted: true })
        {
            return;
        }

        await _saveLock.WaitAsync();
        try
        {
            Interlocked.Exchange(ref _saveScheduled, 0);
            var messages = await _server.GetRetainedMessagesAsync();
            var stored = messages.Select(m => new StoredRetainedMessage(m.Topic, System.Buffers.BuffersExtensions.ToArray(m.Payload), m.QualityOfServiceLevel)).ToList();
            var path = RetainedMessagesPath();
            Security.PrivateFiles.CreateFolder(Path.GetDirectoryName(path)!);
            var temporary = path + ".tmp";
            await using (var file = Security.PrivateFiles.Create(temporary))
            {
                await JsonSerializer.SerializeAsync(file, stored);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException or ObjectDisposedException)
        {
            // InvalidOperationException: the broker stopped between the check above and the read (seen in tests).
            LogRetainedSaveFailed(ex.Message);
        }
        finally
        {
            _saveLock.Release();
        }
    }

    private string RetainedMessagesPath() => Path.GetFullPath(_options.Embedded.RetainedMessagesFile);

    private sealed record StoredRetainedMessage(string Topic, byte[] Payload, MqttQualityOfServiceLevel Qos);

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedded MQTT broker listening on port {Port} (sessions in memory; retained messages saved to disk)")]
    private partial void LogStarted(int port);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker refused client {ClientId}: bad username or password for user {Username}")]
    private partial void LogRefused(string clientId, string username);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Embedded broker did not stop cleanly: {Reason}")]
    private partial void LogStopFailed(string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded {Count} retained messages from {Path}")]
    private partial void LogRetainedLoaded(int count, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot read retained messages from {Path}: {Reason}")]
    private partial void LogRetainedLoadFailed(string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot save retained messages: {Reason}")]
    private partial void LogRetainedSaveFailed(string reason);
}
