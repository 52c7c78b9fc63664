using System.Globalization;
using System.Security.Cryptography.X509Certificates;

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
        Requires.Mosquitto();
        using var files = new TempDirectory("iotgw-tls-");
        using var ca = TestCertificateAuthority.Create(files.Path);
        var loopback = ca.CreateServerCertificate("loopback");
        var otherHost = ca.CreateServerCertificateFor("other-host", "other.example");
        var (broker, urls) = await StartTlsBrokerAsync(webSockets: false, loopback, otherHost);
        await using var _ = broker;

        // The same CA with the right name connects: what is refused below is the name, not the CA.
        await AssertConnectsAsync(urls[0], ca.CertificatePath);

        var url = urls[1];
        await using (var refused = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath, waitUntilReady: false))
        {
            // SslStream reports any refusal by a validation callback only as "rejected by the provided
            // RemoteCertificateValidationCallback": the gateway logs which check failed itself.
            await AssertRefusedAsync(broker, refused, url, because: "is not for '127.0.0.1'");
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
        Requires.Mosquitto();
        using var files = new TempDirectory("iotgw-tls-");
        using var ca = TestCertificateAuthority.Create(files.Path);
        var server = ca.CreateServerCertificate("server");
        // What a device of the same private CA holds: its certificate and key, for client authentication only.
        var clientOnly = ca.CreateClientOnlyCertificateForLoopback();
        var (broker, urls) = await StartTlsBrokerAsync(webSockets: false, server, clientOnly);
        await using var _ = broker;

        // The same CA and names with a server certificate connect: what is refused below is the usage alone.
        await AssertConnectsAsync(urls[0], ca.CertificatePath);

        // The system's check (SslStream) refuses a certificate whose extended key usage excludes servers;
        // "certificate errors refuse the connection" holds for the CA file too.
        await using var gateway = await GatewayApp.StartAsync(urls[1], s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath, waitUntilReady: false);
        await AssertRefusedAsync(broker, gateway, urls[1], because: "is not trusted by Mqtt:Tls:CaFile: NotValidForUsage");
    }

    [SkippableFact]
    public async Task ChainThroughAnIntermediateIsTrustedWithOnlyTheRootInTheCaFile()
    {
        Requires.Mosquitto();
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

        var (broker, urls) = await StartTlsBrokerAsync(webSockets: false,
            new TestCertificateFiles(leafAndIntermediate, server.KeyPath), new TestCertificateFiles(withRoot, server.KeyPath));
        await using var _ = broker;
        var (url, withRootUrl) = (urls[0], urls[1]);

        await using (var gateway = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = root.CertificatePath))
        {
            // Connected is not enough: a device's reading goes through the broker and the TLS connection into SQLite.
            await using var device = await TestMqttClient.ConnectAsync(broker, "behind-intermediate");
            await device.PublishAsync(TopicRoots.Default.For("behind-intermediate").Data, """{"temp":21.5}""");
            await gateway.WaitForDeviceAsync("behind-intermediate", d => d.TelemetryCount == 1, "the reading is stored", Timeout);
        }

        // A root that did not sign the chain does not vouch for it, whether or not the broker sends its own root.
        await using (var unrelatedRoot = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = unrelated.CertificatePath, waitUntilReady: false))
        {
            await AssertRefusedAsync(broker, unrelatedRoot, url, because: "is not trusted by Mqtt:Tls:CaFile");
        }

        await using var sentRoot = await GatewayApp.StartAsync(withRootUrl, s => s["Mqtt:Tls:CaFile"] = unrelated.CertificatePath, waitUntilReady: false);
        await AssertRefusedAsync(broker, sentRoot, withRootUrl, because: "is not trusted by Mqtt:Tls:CaFile");
    }

    [SkippableFact]
    public async Task GatewayWorksOverWssWithThePrivateCaAndRefusesWhatItCannotTrust()
    {
        Requires.Mosquitto();
        using var files = new TempDirectory("iotgw-tls-");
        using var ca = TestCertificateAuthority.Create(files.Path);
        var loopback = ca.CreateServerCertificate("loopback");
        var otherHost = ca.CreateServerCertificateFor("other-host", "other.example");
        var (broker, urls) = await StartTlsBrokerAsync(webSockets: true, loopback, otherHost);
        await using var _ = broker;
        var (url, otherHostUrl) = (urls[0], urls[1]);

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
        await using var wrongName = await GatewayApp.StartAsync(otherHostUrl, s => s["Mqtt:Tls:CaFile"] = ca.CertificatePath, waitUntilReady: false);
        await AssertRefusedAsync(broker, wrongName, otherHostUrl, because: "is not for '127.0.0.1'");
    }

    // One TLS listener on 127.0.0.1 per certificate (mosquitto's certfile may hold a chain, leaf first); returns the
    // broker and each listener's URL, in order.
    private static async Task<(MosquittoBroker Broker, string[] Urls)> StartTlsBrokerAsync(bool webSockets, params TestCertificateFiles[] listeners)
    {
        var ports = new List<int>();
        while (ports.Count < listeners.Length)
        {
            var port = FreePort.OnLoopback();
            if (!ports.Contains(port))
            {
                ports.Add(port);
            }
        }

        var config = string.Concat(listeners.Select((files, i) => string.Create(CultureInfo.InvariantCulture, $"""
            listener {ports[i]} 127.0.0.1
            {(webSockets ? "protocol websockets" : "protocol mqtt")}
            certfile {files.CertificatePath}
            keyfile {files.KeyPath}

            """)));
        var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions { ExtraConfig = config });
        var urls = ports.Select(port => webSockets
            ? FormattableString.Invariant($"wss://127.0.0.1:{port}/mqtt")
            : FormattableString.Invariant($"mqtts://127.0.0.1:{port}")).ToArray();
        return (broker, urls);
    }

    // The control: the same CA file connects to this listener, so a refusal elsewhere is about that certificate.
    private static async Task AssertConnectsAsync(string url, string caFile)
    {
        await using var control = await GatewayApp.StartAsync(url, s => s["Mqtt:Tls:CaFile"] = caFile);
        Assert.True(control.Logs.Contains($"Connected to broker {url}"));
    }

    // Refused at every attempt: each failure is logged, readiness is 503 and says why, no connection is ever
    // reported, and Mosquitto never saw an MQTT CONNECT from the gateway's client id. With `because`, the gateway's
    // own line names the check that failed.
    private static async Task AssertRefusedAsync(MosquittoBroker broker, GatewayApp gateway, string url, string? because = null)
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
        if (because is not null)
        {
            Assert.True(gateway.Logs.Lines.Any(l => l.Contains("Broker certificate refused: the broker's certificate (", StringComparison.Ordinal) && l.Contains(because, StringComparison.Ordinal)),
                $"a log line says why the certificate was refused ({because})");
        }
    }

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
