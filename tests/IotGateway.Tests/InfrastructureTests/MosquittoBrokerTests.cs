using System.Security.Cryptography.X509Certificates;

namespace IotGateway.Tests.InfrastructureTests;

public sealed class MosquittoBrokerTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);

    [MosquittoFact]
    public async Task Starts_on_a_free_loopback_port_and_relays_messages()
    {
        await using var broker = await MosquittoBroker.StartAsync();

        Assert.True(broker.IsRunning);
        Assert.Equal("127.0.0.1", broker.Host);
        Assert.Equal($"mqtt://127.0.0.1:{broker.Port}", broker.Url);
        Assert.Contains("running", broker.ReadLog(), StringComparison.Ordinal);

        await using var observer = await TestMqttClient.ConnectAsync(broker, "observer");
        await observer.SubscribeAsync("test/#");
        await using var device = await TestMqttClient.ConnectAsync(broker, "device");
        await device.PublishAsync("test/a", "hello", MqttQualityOfServiceLevel.AtLeastOnce);

        var message = await observer.WaitForMessageAsync("test/a", Wait);
        Assert.Equal("hello", message.Payload);
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, message.QualityOfService);
        Assert.False(message.Retain);
    }

    [MosquittoFact]
    public async Task Dispose_kills_the_process_and_deletes_the_directory()
    {
        var broker = await MosquittoBroker.StartAsync();
        var pid = broker.ProcessId!.Value;
        var directory = broker.DataDirectory;

        await broker.DisposeAsync();

        Assert.False(Directory.Exists(directory));
        Assert.False(IsAlive(pid));
    }

    [MosquittoFact]
    public async Task A_queued_QoS1_message_for_a_persistent_session_survives_a_graceful_restart()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        var port = broker.Port;

        static void Persistent(MqttClientOptionsBuilder o) => o.WithCleanStart(false).WithSessionExpiryInterval(3600);

        var subscriber = await TestMqttClient.ConnectAsync(broker, "persistent-sub", Persistent);
        await subscriber.SubscribeAsync("queued/+", MqttQualityOfServiceLevel.AtLeastOnce);
        await subscriber.DisconnectAsync();
        await subscriber.DisposeAsync();

        await using (var publisher = await TestMqttClient.ConnectAsync(broker, "publisher"))
        {
            await publisher.PublishAsync("queued/dev-1", "while-offline", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        await broker.StopAsync();
        Assert.False(broker.IsRunning);
        await broker.StartAgainAsync();

        Assert.Equal(port, broker.Port);
        await using var again = await TestMqttClient.ConnectAsync(broker, "persistent-sub", Persistent);
        Assert.True(again.ConnectResult!.IsSessionPresent);
        var message = await again.WaitForMessageAsync("queued/dev-1", Wait);
        Assert.Equal("while-offline", message.Payload);
        Assert.Equal(MqttQualityOfServiceLevel.AtLeastOnce, message.QualityOfService);
    }

    [MosquittoFact]
    public async Task Restarts_on_the_same_port_after_a_kill()
    {
        await using var broker = await MosquittoBroker.StartAsync();
        var port = broker.Port;
        var firstPid = broker.ProcessId;

        await broker.KillAsync();
        Assert.False(broker.IsRunning);
        await broker.StartAgainAsync();

        Assert.Equal(port, broker.Port);
        Assert.NotEqual(firstPid, broker.ProcessId);
        await using var client = await TestMqttClient.ConnectAsync(broker, "after-kill");
        Assert.True(client.IsConnected);
    }

    [MosquittoFact]
    public async Task Password_file_accepts_the_right_credentials_and_refuses_others()
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            Users = [("gateway", "s3cret:with colon"), ("device", "other")],
        });

        await using (var ok = await TestMqttClient.ConnectAsync(broker, "ok", o => o.WithCredentials("gateway", "s3cret:with colon")))
        {
            Assert.True(ok.IsConnected);
        }

        var wrong = await Assert.ThrowsAsync<MqttConnectRefusedException>(
            () => TestMqttClient.ConnectAsync(broker, "wrong", o => o.WithCredentials("gateway", "nope")));
        // Mosquitto 2.0 answers a wrong password with 0x87 Not authorized; other versions use 0x86.
        Assert.Contains(wrong.ResultCode, new[] { MqttClientConnectResultCode.NotAuthorized, MqttClientConnectResultCode.BadUserNameOrPassword });

        var anonymous = await Assert.ThrowsAsync<MqttConnectRefusedException>(
            () => TestMqttClient.ConnectAsync(broker, "anonymous"));
        Assert.Equal(MqttClientConnectResultCode.NotAuthorized, anonymous.ResultCode);
    }

    [MosquittoFact]
    public async Task Tls_listener_accepts_a_client_that_trusts_the_test_CA_and_refuses_one_that_does_not()
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions { Tls = true });
        Assert.Equal($"mqtts://127.0.0.1:{broker.TlsPort}", broker.TlsUrl);
        Assert.True(File.Exists(broker.CaCertificatePath));

        await using var trusting = await TestMqttClient.ConnectAsync(broker.Host, broker.TlsPort, "trusting",
            o => o.WithTlsOptions(t => t.UseTls().WithTrustChain([broker.CaCertificate])));
        await trusting.SubscribeAsync("secure/#");
        await trusting.PublishAsync("secure/x", "over tls");
        Assert.Equal("over tls", (await trusting.WaitForMessageAsync("secure/x", Wait)).Payload);

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => TestMqttClient.ConnectAsync(
            broker.Host, broker.TlsPort, "not-trusting", o => o.WithTlsOptions(t => t.UseTls())));
        Assert.IsNotType<MqttConnectRefusedException>(refused);
        Assert.Contains("certificate", Flatten(refused), StringComparison.OrdinalIgnoreCase);

        // The plain listener stays open next to the TLS one.
        await using var plain = await TestMqttClient.ConnectAsync(broker, "plain");
        Assert.True(plain.IsConnected);
    }

    [MosquittoFact]
    public async Task Tls_listener_can_require_a_client_certificate_signed_by_the_test_CA()
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            Tls = true,
            RequireClientCertificate = true,
        });
        var files = broker.CreateClientCertificate("dev-42");
        Assert.True(File.Exists(files.CertificatePath));
        Assert.True(File.Exists(files.KeyPath));
        using var certificate = files.Load();
        Assert.True(certificate.HasPrivateKey);
        Assert.Contains("CN=dev-42", certificate.Subject, StringComparison.Ordinal);

        await using var withCertificate = await TestMqttClient.ConnectAsync(broker.Host, broker.TlsPort, "with-cert",
            o => o.WithTlsOptions(t => t.UseTls()
                .WithTrustChain([broker.CaCertificate])
                .WithClientCertificates(new X509Certificate2Collection(certificate))));
        Assert.True(withCertificate.IsConnected);

        await Assert.ThrowsAnyAsync<Exception>(() => TestMqttClient.ConnectAsync(broker.Host, broker.TlsPort, "without-cert",
            o => o.WithTlsOptions(t => t.UseTls().WithTrustChain([broker.CaCertificate]))));
    }

    [MosquittoTheory]
    [InlineData(false, false, false)]
    [InlineData(true, false, false)]
    [InlineData(false, true, false)]
    [InlineData(true, true, false)]
    [InlineData(false, true, true)]
    [InlineData(true, true, true)]
    public async Task Every_combination_of_users_tls_and_client_certificates_starts(bool users, bool tls, bool requireCertificate)
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions
        {
            Users = users ? [("u", "p")] : [],
            Tls = tls,
            RequireClientCertificate = requireCertificate,
        });

        Action<MqttClientOptionsBuilder> credentials = o =>
        {
            if (users)
            {
                o.WithCredentials("u", "p");
            }
        };

        await using (var plain = await TestMqttClient.ConnectAsync(broker, "plain", credentials))
        {
            Assert.True(plain.IsConnected);
        }

        if (tls)
        {
            using var certificate = broker.CreateClientCertificate("combo").Load();
            await using var secure = await TestMqttClient.ConnectAsync(broker.Host, broker.TlsPort, "secure", o =>
            {
                credentials(o);
                o.WithTlsOptions(t => t.UseTls()
                    .WithTrustChain([broker.CaCertificate])
                    .WithClientCertificates(new X509Certificate2Collection(certificate)));
            });
            Assert.True(secure.IsConnected);
        }
    }

    [MosquittoFact]
    public async Task Extra_config_is_applied()
    {
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoBrokerOptions { ExtraConfig = "retain_available false" });

        await using var client = await TestMqttClient.ConnectAsync(broker, "extra");
        Assert.False(client.ConnectResult!.RetainAvailable);
        Assert.Contains("retain_available false", File.ReadAllText(broker.ConfigPath), StringComparison.Ordinal);
    }

    [MosquittoFact]
    public async Task A_broken_config_fails_start_with_the_broker_output()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(
            () => MosquittoBroker.StartAsync(new MosquittoBrokerOptions { ExtraConfig = "no_such_option 1" }));

        Assert.Contains("no_such_option", error.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Requires_lets_a_skippable_fact_decide_at_run_time()
    {
        Requires.Mosquitto();

        await using var broker = await MosquittoBroker.StartAsync();
        Assert.True(broker.IsRunning);
    }

    [Fact]
    public void Mosquitto_is_found_or_the_skip_message_says_how_to_install_it()
    {
        if (MosquittoBroker.IsInstalled)
        {
            Assert.True(File.Exists(MosquittoBroker.ExecutablePath));
        }
        else
        {
            Assert.Contains("apt-get install mosquitto", MosquittoBroker.NotInstalledMessage, StringComparison.Ordinal);
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static string Flatten(Exception e)
    {
        var text = "";
        for (Exception? current = e; current is not null; current = current.InnerException)
        {
            text += current.GetType().Name + ": " + current.Message + "\n";
        }

        return text;
    }
}
