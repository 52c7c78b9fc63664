using System.Globalization;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using DeviceSimulator.Devices;
using DeviceSimulator.Tcp;

namespace IotGateway.Tests.Tcp;

// TLS on the TCP device port (Tcp:Tls:CertificateFile and KeyFile), because such devices cross the internet.
public sealed class TcpTlsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("iotgw-tcp-tls-").FullName;

    [Fact]
    public async Task ADeviceThatTrustsTheCaSignsUpOverTls()
    {
        using var ca = TestCertificateAuthority.Create(_directory);
        var server = ca.CreateServerCertificate();
        await using var gateway = await TcpGateway.StartAsync(s =>
        {
            s["Tcp:Tls:CertificateFile"] = server.CertificatePath;
            s["Tcp:Tls:KeyFile"] = server.KeyPath;
        });

        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync("127.0.0.1", gateway.Port);
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { ca.Certificate },
                RevocationMode = X509RevocationMode.NoCheck,
            },
        });
        await tls.WriteAsync(Encoding.UTF8.GetBytes(TcpDeviceTests.Signup("tls-1") + TcpDeviceTests.Data("tls-1", 20.5)));
        await gateway.App.WaitForDeviceAsync("tls-1", d => d.SignedIn && d.TelemetryCount == 1, "signed in with its reading over TLS");
    }

    [Fact]
    public async Task TheSimulatorsTcpDeviceConnectsWithTls()
    {
        using var ca = TestCertificateAuthority.Create(_directory);
        var server = ca.CreateServerCertificate();
        await using var gateway = await TcpGateway.StartAsync(s =>
        {
            s["Tcp:Tls:CertificateFile"] = server.CertificatePath;
            s["Tcp:Tls:KeyFile"] = server.KeyPath;
        });
        using var stop = new CancellationTokenSource();
        using var device = new TcpSimulatedDevice(new DeviceSettings
        {
            Broker = BrokerAddress.Parse("mqtt://127.0.0.1:1"),
            Transport = DeviceTransport.Tcp,
            TcpServer = new DnsEndPoint("localhost", gateway.Port),
            TcpTls = true,
            AllowUntrustedCertificates = true,
            DeviceId = "tls-sim",
            Interval = TimeSpan.FromSeconds(0.2),
        }, new DeviceLog(TextWriter.Null, null, eachMessage: false));
        var run = device.RunAsync(stop.Token);
        await gateway.App.WaitForDeviceAsync("tls-sim", d => d.SignedIn && d.TelemetryCount >= 2, "the simulated device signs in and sends readings");
        await stop.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(15));
        await gateway.App.WaitForDeviceAsync("tls-sim", d => !d.SignedIn, "signed out when it stops");
    }

    [Fact]
    public async Task PlainTextOnTheTlsPortIsClosedAndTheListenerGoesOn()
    {
        using var ca = TestCertificateAuthority.Create(_directory);
        var server = ca.CreateServerCertificate();
        await using var gateway = await TcpGateway.StartAsync(s =>
        {
            s["Tcp:Tls:CertificateFile"] = server.CertificatePath;
            s["Tcp:Tls:KeyFile"] = server.KeyPath;
            s["Tcp:FirstMessageTimeoutSeconds"] = "2";
        });

        using var plain = await gateway.ConnectAsync();
        await plain.SendAsync(TcpDeviceTests.Signup("plain") + new string(' ', 600));
        Assert.True(await plain.ClosedByGatewayAsync(), "a client that does not speak TLS is closed");
        Assert.Null(await gateway.App.GetDeviceAsync("plain"));
        await Eventually.UntilAsync(() => gateway.App.Logs.Contains("connection error"), TimeSpan.FromSeconds(15), "the handshake failure is logged");
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
