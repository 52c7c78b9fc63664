using System.Collections.Concurrent;
using System.Net.Sockets;
using DeviceSimulator.Devices;
using MQTTnet.Formatter;
using MQTTnet.Server;

namespace IotGateway.Tests.Simulator;

// MQTTnet's in-process broker on a free port, with persistent sessions like a real deployment,
// remembering how each client left (clean DISCONNECT or a dropped socket).
internal sealed class SimulatorBroker : IAsyncDisposable
{
    private readonly MqttServer _server;
    private readonly ConcurrentQueue<(string ClientId, MqttClientDisconnectType How)> _disconnects = new();
    private readonly ConcurrentDictionary<string, int> _refusals = new(StringComparer.Ordinal);

    private SimulatorBroker(MqttServer server, int port)
    {
        _server = server;
        Port = port;
        _server.ClientDisconnectedAsync += e =>
        {
            _disconnects.Enqueue((e.ClientId, e.DisconnectType));
            return Task.CompletedTask;
        };
        _server.InterceptingPublishAsync += e =>
        {
            if (_refusals.TryGetValue(e.ApplicationMessage.Topic, out var left) && left > 0
                && _refusals.TryUpdate(e.ApplicationMessage.Topic, left - 1, left))
            {
                // Refused with a reason code (PUBREC for QoS 2), as a broker that cannot take it now would.
                e.ProcessPublish = false;
                e.Response.ReasonCode = MQTTnet.Protocol.MqttPubAckReasonCode.ImplementationSpecificError;
            }

            return Task.CompletedTask;
        };
    }

    public int Port { get; }

    public BrokerAddress Address => BrokerAddress.Parse($"mqtt://127.0.0.1:{Port}");

    public static async Task<SimulatorBroker> StartAsync()
    {
        var port = FreePort();
        var options = new MqttServerOptionsBuilder()
            .WithDefaultEndpoint()
            .WithDefaultEndpointPort(port)
            .WithPersistentSessions()
            .Build();
        var server = new MqttServerFactory().CreateMqttServer(options);
        var broker = new SimulatorBroker(server, port);
        await server.StartAsync();
        return broker;
    }

    // Short intervals so a test sees several windows in a few seconds.
    public DeviceSettings DeviceSettings(string deviceId, double intervalSeconds = 0.6, double onlineSeconds = 0.3, MqttProtocolVersion protocol = MqttProtocolVersion.V500) => new()
    {
        Broker = Address,
        DeviceId = deviceId,
        Interval = TimeSpan.FromSeconds(intervalSeconds),
        OnlineWindow = TimeSpan.FromSeconds(onlineSeconds),
        Protocol = protocol,
        RandomSeed = 42,
    };

    // The next `count` messages published on this topic are refused instead of delivered.
    public void RefuseNext(string topic, int count) => _refusals[topic] = count;

    public IReadOnlyList<MqttClientDisconnectType> DisconnectsOf(string clientId) =>
        _disconnects.Where(d => d.ClientId == clientId).Select(d => d.How).ToList();

    public async Task<string?> RetainedPayloadAsync(string topic)
    {
        var message = await _server.GetRetainedMessageAsync(topic);
        return message?.ConvertPayloadToString();
    }

    public async Task<bool> IsConnectedAsync(string clientId)
    {
        var clients = await _server.GetClientsAsync();
        return clients.Any(c => c.Id == clientId);
    }

    // The broker ends the device's connection, as an operator or a broker restart would.
    public Task KickAsync(string clientId) =>
        _server.DisconnectClientAsync(clientId, new MqttServerFactory().CreateMqttServerClientDisconnectOptionsBuilder().Build());

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _server.StopAsync();
        }
        catch (InvalidOperationException)
        {
            // MQTTnet 5.2 can trip over its own client list while closing connections ("Collection was modified").
        }

        _server.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
