using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace IotGateway.Tests.Gateway;

// Safe by default, as Mosquitto 2 is: the embedded broker listens on loopback until told otherwise, and says so;
// told to listen beyond this machine with no device credentials, it warns.
public sealed class EmbeddedBrokerBindingTests
{
    private const string OpenWarning = "beyond this machine, and accepts any device without credentials";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [SkippableFact]
    public async Task ListensOnLoopbackOnlyUntilConfiguredOtherwise()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync();
        await using var gateway = started;
        Assert.True(gateway.Logs.Contains($"MQTT: mqtt://127.0.0.1:{port} (embedded broker; devices connect here)"), "the start-up line names the address it listens on");
        Assert.False(gateway.Logs.Contains(OpenWarning));
        await using (var local = await TestMqttClient.ConnectAsync("127.0.0.1", port, "local"))
        {
            Assert.True(local.IsConnected);
        }

        var other = NetworkAddress();
        Skip.If(other is null, "this machine has no network address besides loopback to try");
        using var tcp = new TcpClient();
        var refused = await Assert.ThrowsAsync<SocketException>(() => tcp.ConnectAsync(other!, port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [SkippableFact]
    public async Task ListeningOnEveryInterfaceWithoutDeviceCredentialsWarns()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(s => s["Mqtt:Embedded:BindAddress"] = "0.0.0.0");
        await using var gateway = started;
        Assert.True(gateway.Logs.Contains($"MQTT: mqtt://0.0.0.0:{port} (embedded broker; devices connect here)"));
        Assert.Contains(gateway.Logs.Lines, l => l.StartsWith("Warning", StringComparison.Ordinal) && l.Contains($"listens on mqtt://0.0.0.0:{port}, {OpenWarning}", StringComparison.Ordinal));
        await gateway.WaitUntilReadyAsync(); // the gateway's own client still reaches it, on loopback

        var other = NetworkAddress();
        Skip.If(other is null, "this machine has no network address besides loopback to try");
        await using var remote = await TestMqttClient.ConnectAsync(other!.ToString(), port, "from-the-network");
        Assert.True(remote.IsConnected);
    }

    [Fact]
    public async Task ListeningOnEveryInterfaceWithDeviceCredentialsDoesNotWarn()
    {
        var (started, _) = await GatewayApp.StartEmbeddedAsync(s =>
        {
            s["Mqtt:Embedded:BindAddress"] = "0.0.0.0";
            s["Mqtt:Embedded:Users:0:Username"] = "device";
            s["Mqtt:Embedded:Users:0:Password"] = "device-password-1";
        });
        await using var gateway = started;
        await gateway.WaitUntilReadyAsync();
        Assert.False(gateway.Logs.Contains(OpenWarning));
    }

    private static IPAddress? NetworkAddress() => NetworkInterface.GetAllNetworkInterfaces()
        .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
        .SelectMany(n => n.GetIPProperties().UnicastAddresses)
        .Select(a => a.Address)
        .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
}
