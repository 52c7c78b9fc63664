using IotGateway.Protocol;

namespace DeviceSimulator.Devices;

// What a fleet needs from a device, whichever way it talks to the server.
internal interface ISimulatedDevice : IDisposable
{
    DeviceSettings Settings { get; }
    string DeviceId { get; }
    bool IsSignedIn { get; }
    bool IsConnected { get; }
    long ReadingsSent { get; }
    long CommandsAnswered { get; }
    long ConnectFailures { get; }

    // Runs until cancelled, then signs out.
    Task RunAsync(CancellationToken cancellationToken);
}

public enum DeviceTransport
{
    // The article's MQTT device: persistent session, presence on the register topic, commands from the broker.
    Mqtt,

    // The article's TCP device: one connection to SERVER_HOST:SERVER_PORT, JSON objects both ways.
    Tcp,
}
