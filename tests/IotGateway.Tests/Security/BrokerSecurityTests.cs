using System.Globalization;
using System.Text.RegularExpressions;

namespace IotGateway.Tests.Security;

// The gateway against a Mosquitto that requires credentials, TLS and client certificates.
public sealed partial class BrokerSecurityTests
{
    private const string User = "gateway";
    private const string Password = "s3cret-broker-password";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public async Task CredentialsFromTheBrokerUrlOrFromSettingsAreAccepted()
    {
        await using var broker = await StartAsync(new MosquittoBrokerOptions { Users = [(User, Password)] });

        await using (var fromUrl = await GatewayApp.StartAsync($"mqtt://{User}:{Password}@{broker.Host}:{broker.Port}"))
        {
            Assert.Contains("mqtt://gateway:***@", (await ReadinessAsync(fromUrl)).GetProperty("checks").GetProperty("broker").GetProperty("description").GetString(),
                StringComparison.Ordinal);
        }

        await using var fromSettings = await GatewayApp.StartAsync(broker.Url, s =>
        {
            s["Mqtt:Username"] = User;
            s["Mqtt:Password"] = Password;
        });
        await fromSettings.WaitUntilReadyAsync();
    }

    [SkippableFact]
    public async Task RefusedCredentialsAreReportedAndRetriedWithBackoff()
    {
        await using var broker = await StartAsync(new MosquittoBrokerOptions { Users = [(User, Password)] });
        await using var gateway = await GatewayApp.StartAsync($"mqtt://{User}:wrong-password@{broker.Host}:{broker.Port}", s =>
        {
            s["Mqtt:ReconnectMinDelaySeconds"] = "0.1";
            s["Mqtt:ReconnectMaxDelaySeconds"] = "10";
        }, waitUntilReady: false);

        await Eventually.UntilAsync(() => gateway.Logs.Contains("(attempt 5)"), Timeout, "the gateway keeps retrying");
        var readiness = await ReadinessAsync(gateway);
        Assert.Equal("Unhealthy", readiness.GetProperty("status").GetString());
        Assert.Contains("NotAuthorized", // Mosquitto answers a wrong password with 0x87
           
            readiness.GetProperty("checks").GetProperty("broker").GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.True(gateway.Logs.Contains("Broker refused the connection: NotAuthorized"));

        // Doubling delays: by the fifth attempt the wait is well above the first one.
        var delays = gateway.Logs.Lines.Select(l => ReconnectDelay().Match(l)).Where(m => m.Success)
            .Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.True(delays[4] >= 0.8, $"backoff grows: {string.Join(", ", delays)}");
        Assert.DoesNotContain(gateway.Logs.Lines, l => l.Contains("wrong-password", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task TlsWithThePrivateCaConnectsAndWithoutItIsRefused()
    {
        await using var broker = await StartAsync(new MosquittoBrokerOptions { Tls = true });

        await using (var trusted = await GatewayApp.StartAsync(broker.TlsUrl, s => s["Mqtt:Tls:CaFile"] = broker.CaCertificatePath))
        {
            await trusted.WaitUntilReadyAsync();
        }

        await using var untrusted = await GatewayApp.StartAsync(broker.TlsUrl, waitUntilReady: false);
        await Eventually.UntilAsync(() => untrusted.Logs.Contains("Cannot connect to broker mqtts://"), Timeout, "the TLS failure is logged");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await untrusted.Http.GetAsync("/health/ready")).StatusCode);
        Assert.False(broker.ReadLog().Contains("as " + untrusted.ClientId, StringComparison.Ordinal), "no MQTT session was opened over the untrusted connection");

        await using var dangerous = await GatewayApp.StartAsync(broker.TlsUrl, s => s["Mqtt:Tls:DangerousAcceptAnyServerCertificate"] = "true");
        Assert.True(dangerous.Logs.Contains("DangerousAcceptAnyServerCertificate is on"));
    }

    [SkippableFact]
    public async Task ClientCertificateIsPresentedWhenTheBrokerRequiresOne()
    {
        await using var broker = await StartAsync(new MosquittoBrokerOptions { Tls = true, RequireClientCertificate = true });
        var client = broker.CreateClientCertificate("iot-gateway");

        await using (var withCertificate = await GatewayApp.StartAsync(broker.TlsUrl, s =>
        {
            s["Mqtt:Tls:CaFile"] = broker.CaCertificatePath;
            s["Mqtt:Tls:ClientCertificate"] = client.CertificatePath;
            s["Mqtt:Tls:ClientKey"] = client.KeyPath;
        }))
        {
            await withCertificate.WaitUntilReadyAsync();
        }

        await using var without = await GatewayApp.StartAsync(broker.TlsUrl, s => s["Mqtt:Tls:CaFile"] = broker.CaCertificatePath, waitUntilReady: false);
        await Eventually.UntilAsync(() => without.Logs.Contains("Cannot connect to broker mqtts://"), Timeout, "the refusal is logged");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await without.Http.GetAsync("/health/ready")).StatusCode);
    }

    [SkippableFact]
    public async Task NoSecretAppearsInAnyLogLineOrResponseOfAWholeRun()
    {
        await using var broker = await StartAsync(new MosquittoBrokerOptions { Users = [(User, Password)] });
        // Every level an operator might turn on while debugging, the framework's and MQTTnet's included.
        await using var gateway = await GatewayApp.StartAsync($"mqtt://{User}:{Password}@{broker.Host}:{broker.Port}",
            s =>
            {
                s["Logging:LogLevel:Default"] = "Trace";
                s["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace";
                s["Logging:LogLevel:Microsoft.EntityFrameworkCore"] = "Trace";
                s["Logging:LogLevel:IotGateway.Security.ApiKeyAuthenticationHandler"] = "Trace";
            });
        await using var device = await TestMqttClient.ConnectAsync(broker, "secretive", o => o.WithCredentials(User, Password));
        await device.SubscribeAsync(TopicRoots.Default.For("secretive").CommandRequest);
        await device.PublishAsync(TopicRoots.Default.For("secretive").Register, "SIGN_IN", retain: true);
        await gateway.WaitForDeviceAsync("secretive", d => d.SignedIn, "the device signs in");
        var queued = await gateway.QueueCommandAsync("secretive", new { command = "PING" });
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await device.PublishAsync(TopicRoots.Default.For("secretive").CommandResponse, GatewayEndToEndTests.ArticleAnswer("secretive", queued.Id, "PING", "PONG"));
        await gateway.WaitForCommandAsync(queued.Id, Data.CommandStatus.Completed);

        var bodies = new List<string>();
        using (var wrong = gateway.CreateClient(GatewayApp.OperatorKey + "x"))
        {
            bodies.Add(await (await wrong.GetAsync("/api/devices")).Content.ReadAsStringAsync());
        }

        using (var reader = gateway.CreateClient(GatewayApp.ReaderKey))
        {
            bodies.Add(await (await reader.PostAsJsonAsync("/api/devices/secretive/commands", new { command = "PING" })).Content.ReadAsStringAsync());
        }

        bodies.Add(await (await gateway.Http.GetAsync("/health/ready")).Content.ReadAsStringAsync());
        bodies.Add(await (await gateway.Http.GetAsync("/metrics")).Content.ReadAsStringAsync());

        // A broker outage and reconnect: connection errors are logged too.
        await broker.StopAsync();
        await Eventually.UntilAsync(() => gateway.Logs.Contains("Cannot connect to broker"), Timeout, "the outage is logged");
        bodies.Add(await (await gateway.Http.GetAsync("/health/ready")).Content.ReadAsStringAsync());
        await broker.StartAgainAsync();
        await gateway.WaitUntilReadyAsync();
        await gateway.StopAsync();

        // The database too (commands record who queued them by key name, never by key), WAL included.
        var database = new System.Text.StringBuilder();
        foreach (var file in Directory.EnumerateFiles(gateway.DataDirectory, "gateway.db*"))
        {
            database.Append(System.Text.Encoding.UTF8.GetString(await File.ReadAllBytesAsync(file)));
        }

        Assert.Contains("test-operator", database.ToString(), StringComparison.Ordinal); // the command's RequestedBy: the file was read
        bodies.Add(database.ToString());

        var everything = string.Join('\n', gateway.Logs.Lines.Concat(bodies));
        foreach (var secret in new[] { Password, GatewayApp.OperatorKey, GatewayApp.ReaderKey })
        {
            Assert.DoesNotContain(secret, everything, StringComparison.Ordinal);
        }

        Assert.Contains("Connected to broker mqtt://gateway:***@", everything, StringComparison.Ordinal);
        // The levels were on: ASP.NET Core's trace lines and the key handler's debug lines are there.
        Assert.Contains(gateway.Logs.Lines, l => l.StartsWith("Trace Microsoft.AspNetCore", StringComparison.Ordinal));
        Assert.Contains(gateway.Logs.Lines, l => l.StartsWith("Debug IotGateway.Security.ApiKeyAuthenticationHandler", StringComparison.Ordinal));
    }

    [Fact]
    public async Task EmbeddedBrokerCanRequireDeviceCredentials()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(s =>
        {
            s["Mqtt:Embedded:Users:0:Username"] = "device";
            s["Mqtt:Embedded:Users:0:Password"] = "device-password-1";
        });
        await using var gateway = started;

        await using (var device = await TestMqttClient.ConnectAsync("127.0.0.1", port, "with-password", o => o.WithCredentials("device", "device-password-1")))
        {
            await device.PublishAsync(TopicRoots.Default.For("with-password").Data, """{"temp":1}""");
        }

        await gateway.WaitForDeviceAsync("with-password", d => d.TelemetryCount == 1, "a device with credentials is heard");
        var refused = await Assert.ThrowsAsync<MqttConnectRefusedException>(() =>
            TestMqttClient.ConnectAsync("127.0.0.1", port, "wrong-password", o => o.WithCredentials("device", "guess")));
        Assert.Equal(MqttClientConnectResultCode.BadUserNameOrPassword, refused.ResultCode);
        await Assert.ThrowsAsync<MqttConnectRefusedException>(() => TestMqttClient.ConnectAsync("127.0.0.1", port, "anonymous"));
        Assert.True(gateway.Logs.Contains("Embedded broker refused client wrong-password: bad username or password for user device"));
        // A refused client's id and user name are the device's words: escaped, they cannot forge a log line.
        await Assert.ThrowsAsync<MqttConnectRefusedException>(() =>
            TestMqttClient.ConnectAsync("127.0.0.1", port, "forger\ninfo: all is well", o => o.WithCredentials("x\u0007", "guess")));
        Assert.True(gateway.Logs.Contains("Embedded broker refused client forger\\u000Ainfo: all is well: bad username or password for user x\\u0007"));
        Assert.False(gateway.Logs.Contains("device-password-1"));
    }

    // Readiness answers 503 with the same JSON body when something is wrong.
    private static async Task<JsonElement> ReadinessAsync(GatewayApp gateway)
    {
        using var response = await gateway.Http.GetAsync("/health/ready");
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.Clone();
    }

    private static async Task<MosquittoBroker> StartAsync(MosquittoBrokerOptions options)
    {
        Requires.Mosquitto();
        return await MosquittoBroker.StartAsync(options);
    }

    [GeneratedRegex(@"Reconnecting in ([0-9.]+) s")]
    private static partial Regex ReconnectDelay();
}
