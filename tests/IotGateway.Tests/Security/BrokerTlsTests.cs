using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using IotGateway.Tests.Gateway;
using IotGateway.Tests.Infrastructure;

namespace IotGateway.Tests.Security;

// The broker certificate checks of the README's "TLS to the broker", each against a real Mosquitto whose TLS
// listeners present certificates made for the case: a name that is not the host's, a chain through an
// intermediate CA, and wss://. Devices use the broker's plain listener; only the gateway's connection is TLS.
public sealed class BrokerTlsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public async Task CertificateForAnotherHostIsRefusedThoughItsCaIsTrustedUnlessChecksAreOff()
    {
        MosquittoBroker.SkipIfUnavailable();
        using var files = new TempDirectory("iotgw-tls-");
        using var ca = TestCertificateAuthority.Create(files.Path);
        var loopback = ca.CreateServerCertificate("loopback");
        var otherHost = ca.CreateServerCertificateFor("other-host", "other.example");
        var (loopbackPort, otherHostPort) = TwoFreePorts();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            ExtraConfig = TlsListener(loopbackPort, loopback.CertificatePath, loopback.KeyPath)
                + TlsListener(otherHostPort, otherHost.CertificatePath, otherHost.KeyPath),
        });

        // The same CA with the right name connects: what is refused below is the name, not the CA.
        await using (var control = await GatewayApp.StartAsync(MqttsUrl(loopbackPort), s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath))
        {
            Assert.True(control.Logs.Contains($"Connected to broker {MqttsUrl(loopbackPort)}"));
        }

        var url = MqttsUrl(otherHostPort);
        await using (var refused = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath, waitUntilReady: false))
        {
            // SslStream reports any refusal by a validation callback only as "rejected by the provided
            // RemoteCertificateValidationCallback": the gateway logs which check failed itself.
            await AssertRefusedAsync(broker, refused, url);
            AssertCertificateRefusedFor(refused, "is not for '127.0.0.1'");
        }

        // The development switch accepts the very same certificate, and warns when the gateway starts.
        await using var dangerous = await GatewayApp.StartAsync(url, s =>
        {
            s["Mqtt:Tls:CaFile"] = ca.CertificatePath;
            s["Mqtt:Tls:DangerousAcceptAnyServerCertificate"] = "true";
        });
        Assert.True(dangerous.Logs.Lines.Any(l => l.StartsWith(
            "Warning IotGateway.Mqtt.MqttConnection: Mqtt:Tls:DangerousAcceptAnyServerCertificate is on", StringComparison.Ordinal)),
            "the insecure switch is logged as a warning when the gateway starts");
        Assert.True(dangerous.Logs.Contains($"Connected to broker {url}"));
    }

    [SkippableFact]
    public async Task CertificateNotMadeForAServerIsRefusedThoughItsCaAndNameAreRight()
    {
        MosquittoBroker.SkipIfUnavailable();
        using var files = new TempDirectory("iotgw-tls-");
        using var ca = TestCertificateAuthority.Create(files.Path);
        var server = ca.CreateServerCertificate("server");
        // What a device of the same private CA holds: its certificate and key, for client authentication only.
        var clientOnly = ca.CreateClientOnlyCertificateForLoopback();
        var (serverPort, clientOnlyPort) = TwoFreePorts();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            ExtraConfig = TlsListener(serverPort, server.CertificatePath, server.KeyPath)
                + TlsListener(clientOnlyPort, clientOnly.CertificatePath, clientOnly.KeyPath),
        });

        // The same CA and names with a server certificate connect: what is refused below is the usage alone.
        await using (var control = await GatewayApp.StartAsync(MqttsUrl(serverPort), s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath))
        {
            Assert.True(control.Logs.Contains($"Connected to broker {MqttsUrl(serverPort)}"));
        }

        // The system's check (SslStream) refuses a certificate whose extended key usage excludes servers;
        // "certificate errors refuse the connection" holds for the CA file too.
        var url = MqttsUrl(clientOnlyPort);
        await using var gateway = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath, waitUntilReady: false);
        await AssertRefusedAsync(broker, gateway, url);
        AssertCertificateRefusedFor(gateway, "is not trusted by Mqtt:Tls:CaFile: NotValidForUsage");
    }

    [SkippableFact]
    public async Task ChainThroughAnIntermediateIsTrustedWithOnlyTheRootInTheCaFile()
    {
        MosquittoBroker.SkipIfUnavailable();
        using var files = new TempDirectory("iotgw-tls-");
        using var root = TestCertificateAuthority.Create(Path.Combine(files.Path, "root"), "IotGateway Test Root CA");
        using var intermediate = root.CreateIntermediate();
        using var unrelated = TestCertificateAuthority.Create(Path.Combine(files.Path, "unrelated"), "IotGateway Unrelated Root CA");
        var server = intermediate.CreateServerCertificate();
        var leafAndIntermediate = intermediate.WriteChain(server);
        // The same chain with the root appended: a root the broker sends must not count as trusted.
        var withRoot = Path.Combine(files.Path, "with-root.crt");
        File.WriteAllText(withRoot, File.ReadAllText(leafAndIntermediate) + File.ReadAllText(root.CertificatePath));

        // The CA file holds the root alone, so the intermediate can only come from the broker's handshake.
        Assert.Equal(1, CountCertificates(root.CertificatePath));
        Assert.Equal(2, CountCertificates(leafAndIntermediate));
        Assert.Equal(3, CountCertificates(withRoot));

        var (port, withRootPort) = TwoFreePorts();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            ExtraConfig = TlsListener(port, leafAndIntermediate, server.KeyPath) + TlsListener(withRootPort, withRoot, server.KeyPath),
        });
        var url = MqttsUrl(port);

        await using (var gateway = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = root.CertificatePath))
        {
            // Connected is not enough: a device's reading goes through the broker and the TLS connection into SQLite.
            await using var device = await TestMqttClient.ConnectAsync(broker, "behind-intermediate");
            await device.PublishAsync("iot/data/behind-intermediate", """{"temp":21.5}""");
            await gateway.WaitForDeviceAsync("behind-intermediate", d => d.TelemetryCount == 1, "the reading is stored", Timeout);
        }

        // A root that did not sign the chain does not vouch for it, whether or not the broker sends its own root.
        await using (var unrelatedRoot = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = unrelated.CertificatePath, waitUntilReady: false))
        {
            await AssertRefusedAsync(broker, unrelatedRoot, url);
            AssertCertificateRefusedFor(unrelatedRoot, "is not trusted by Mqtt:Tls:CaFile");
        }

        var withRootUrl = MqttsUrl(withRootPort);
        await using var sentRoot = await GatewayApp.StartAsync(withRootUrl, s => s["Mqtt:Tls:CaFile"] = unrelated.CertificatePath, waitUntilReady: false);
        await AssertRefusedAsync(broker, sentRoot, withRootUrl);
    }

    [SkippableFact]
    public async Task GatewayWorksOverWssWithThePrivateCaAndRefusesWhatItCannotTrust()
    {
        MosquittoBroker.SkipIfUnavailable();
        using var files = new TempDirectory("iotgw-tls-");
        using var ca = TestCertificateAuthority.Create(files.Path);
        var loopback = ca.CreateServerCertificate("loopback");
        var otherHost = ca.CreateServerCertificateFor("other-host", "other.example");
        var (port, otherHostPort) = TwoFreePorts();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            ExtraConfig = TlsListener(port, loopback.CertificatePath, loopback.KeyPath, webSockets: true)
                + TlsListener(otherHostPort, otherHost.CertificatePath, otherHost.KeyPath, webSockets: true),
        });
        var url = WssUrl(port);

        await using (var gateway = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath))
        {
            await BrokerTransportTests.RoundTripAsync(broker, gateway, "over-wss");
            Assert.True(gateway.Logs.Contains($"Connected to broker {url}"));
        }

        // WebSockets validate the certificate on another code path (ClientWebSocket, not SslStream): the same
        // refusals must hold there. Without the CA the system does not trust it...
        await using (var withoutCa = await GatewayApp.StartAsync(url, waitUntilReady: false))
        {
            await AssertRefusedAsync(broker, withoutCa, url);
        }

        // ...and with it, a certificate for another host is still refused.
        var otherHostUrl = WssUrl(otherHostPort);
        await using var wrongName = await GatewayApp.StartAsync(otherHostUrl, s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath, waitUntilReady: false);
        await AssertRefusedAsync(broker, wrongName, otherHostUrl);
    }

    // Refused at every attempt: each failure is logged with its reason, readiness is 503 and says why, no connection
    // is ever reported, and Mosquitto never saw an MQTT CONNECT from the gateway's client id. Returns the reason.
    private static async Task<string> AssertRefusedAsync(MosquittoBroker broker, GatewayApp gateway, string url)
    {
        var prefix = $"Cannot connect to broker {url}: ";
        // Stops early on a connection, so a certificate wrongly accepted fails at once and says so.
        await Eventually.UntilAsync(
            () => gateway.Logs.Contains("Connected to broker") || gateway.Logs.Lines.Count(l => l.Contains(prefix, StringComparison.Ordinal)) >= 3,
            Timeout, $"three refused attempts to {url} are logged");
        Assert.False(gateway.Logs.Contains("Connected to broker"), $"the gateway connected to {url}, whose certificate it must refuse");

        using var response = await gateway.Http.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains($"cannot connect to {url}", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain("as " + gateway.ClientId, broker.ReadLog(), StringComparison.Ordinal);

        var line = gateway.Logs.Lines.First(l => l.Contains(prefix, StringComparison.Ordinal));
        return line[(line.IndexOf(prefix, StringComparison.Ordinal) + prefix.Length)..];
    }

    // The gateway's own line, naming the check that failed.
    private static void AssertCertificateRefusedFor(GatewayApp gateway, string why) =>
        Assert.True(gateway.Logs.Lines.Any(l => l.Contains("Broker certificate refused: the broker's certificate (", StringComparison.Ordinal) && l.Contains(why, StringComparison.Ordinal)),
            $"a log line says why the certificate was refused ({why})");

    // A listener of its own (ExtraConfig) on 127.0.0.1; mosquitto's certfile may hold a chain, leaf first.
    private static string TlsListener(int port, string certificateFile, string keyFile, bool webSockets = false) =>
        string.Create(CultureInfo.InvariantCulture, $"""
            listener {port} 127.0.0.1
            {(webSockets ? "protocol websockets" : "protocol mqtt")}
            certfile {certificateFile}
            keyfile {keyFile}

            """);

    private static (int, int) TwoFreePorts()
    {
        var first = MosquittoBroker.FindFreePort();
        int second;
        do
        {
            second = MosquittoBroker.FindFreePort();
        }
        while (second == first);
        return (first, second);
    }

    private static string MqttsUrl(int port) => string.Create(CultureInfo.InvariantCulture, $"mqtts://127.0.0.1:{port}");

    private static string WssUrl(int port) => string.Create(CultureInfo.InvariantCulture, $"wss://127.0.0.1:{port}/mqtt");

    private static int CountCertificates(string pemFile)
    {
        var certificates = new X509Certificate2Collection();
        certificates.ImportFromPemFile(pemFile);
        var count = certificates.Count;
        foreach (var certificate in certificates)
        {
            certificate.Dispose();
        }

        return count;
    }
}
