using System.Net.Sockets;

namespace IotGateway.Tests.Gateway;

// A newcomer's first run: the built gateway, started in an empty folder with no settings at all, must
// bring its own broker on 1883, create its database under data/, and do the whole round trip.
public sealed class FirstRunTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task FreshStartWithNoConfigurationServesDevicesThroughTheEmbeddedBroker()
    {
        var isCi = Environment.GetEnvironmentVariable("CI") == "true";
        Skip.If(!isCi && (PortInUse(1883) || PortInUse(5000)), "ports 1883 and 5000 must be free for the zero-configuration run (a local broker or app uses them)");

        var workingDirectory = Directory.CreateTempSubdirectory("iotgw-firstrun-").FullName;
        try
        {
            await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, workingDirectory);
            await gateway.WaitUntilReadyAsync(Timeout);
            Assert.True(File.Exists(Path.Combine(workingDirectory, "data", "gateway.db")), "the database is created under data/");
            Assert.Contains(gateway.Output, l => l.Contains("/swagger", StringComparison.Ordinal));
            // Loopback until configured otherwise, and the log says so.
            Assert.Contains(gateway.Output, l => l.Contains("MQTT: mqtt://127.0.0.1:1883", StringComparison.Ordinal));
            Assert.DoesNotContain(gateway.Output, l => l.Contains("0.0.0.0", StringComparison.Ordinal));

            using var http = new HttpClient { BaseAddress = gateway.BaseAddress };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/swagger/index.html")).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/devices")).StatusCode);

            // No key configured: an operator key is generated, saved owner-only, and printed this once.
            var keyFile = Path.Combine(workingDirectory, "data", "api-key");
            var apiKey = (await File.ReadAllTextAsync(keyFile)).Trim();
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
            }

            Assert.Single(gateway.Output, l => l.Contains(apiKey, StringComparison.Ordinal));
            http.DefaultRequestHeaders.Add("X-API-Key", apiKey);

            // The topics spelled out, not taken from TopicRoots: with no settings, a newcomer's device uses these.
            await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", 1883, "first-device");
            await device.SubscribeAsync("iot/cmd/req/first-device");
            await device.PublishAsync("iot/register/first-device", "SIGN_IN", retain: true);
            await device.PublishAsync("iot/data/first-device", """{"deviceId":"first-device","messageType":"DATA","temp":23.6,"lat":48.015722,"lng":-88.625528}""");

            // 404 until the first message from the device is stored.
            var seen = await Eventually.UntilAsync(async () =>
            {
                using var response = await http.GetAsync("/api/devices/first-device");
                return response.IsSuccessStatusCode
                    && await response.Content.ReadFromJsonAsync<DeviceView>(GatewayApp.Json) is { SignedIn: true, TelemetryCount: 1 } d ? d : null;
            }, Timeout, "the device is signed in with one reading");
            Assert.NotNull(seen.LastSeen);

            var post = await http.PostAsJsonAsync("/api/devices/first-device/commands", new { command = "PING" });
            Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
            var queued = await post.Content.ReadFromJsonAsync<Commands.QueuedCommand>(GatewayApp.Json);
            await device.WaitForMessageAsync(m => m.Payload.Contains(queued!.Id.ToString()), Timeout);
            await device.PublishAsync("iot/cmd/resp/first-device", GatewayEndToEndTests.ArticleAnswer("first-device", queued!.Id, "PING", "PONG"));

            var done = await Eventually.UntilAsync(async () =>
                await http.GetFromJsonAsync<Commands.CommandView>($"/api/commands/{queued.Id}", GatewayApp.Json) is { Status: CommandStatus.Completed } c ? c : null,
                Timeout, "the answer is stored");
            Assert.Equal("PONG", done.Result?.GetString());

            // Kestrel itself enforces the body limit on a chunked upload (no Content-Length to check up front).
            using var chunked = new HttpRequestMessage(HttpMethod.Post, "/api/devices/first-device/commands")
            {
                Content = new StringContent(JsonSerializer.Serialize(new { command = "PING", payload = new { blob = new string('x', 100_000) } }),
                    System.Text.Encoding.UTF8, "application/json"),
            };
            chunked.Headers.TransferEncodingChunked = true;
            using var tooLarge = await http.SendAsync(chunked);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
            Assert.Equal("application/problem+json", tooLarge.Content.Headers.ContentType?.MediaType);

            // mosquitto_pub and other MQTT 3.1.1 tools send an empty client id; the embedded broker must assign one.
            await using var anonymous = await TestMqttClient.ConnectAsync("127.0.0.1", 1883, "", o => o
                .WithProtocolVersion(MQTTnet.Formatter.MqttProtocolVersion.V311).WithCleanSession(true));
            await anonymous.PublishAsync("iot/data/first-device", """{"temp":24}""");
            await Eventually.UntilAsync(async () =>
                (await http.GetFromJsonAsync<DeviceView>("/api/devices/first-device", GatewayApp.Json))!.TelemetryCount == 2,
                Timeout, "a reading from a client with an empty id is stored");

            // The counters an operator watches have moved.
            var metrics = await http.GetStringAsync("/metrics");
            Assert.Equal(2, MetricsDocumentedTests.Value(metrics, "iot_gateway_readings_stored_total"));
            Assert.Equal(1, MetricsDocumentedTests.Value(metrics, "iot_gateway_broker_connected"));
            Assert.Equal(1, MetricsDocumentedTests.Value(metrics, "iot_gateway_devices_signed_in"));
            Assert.Equal(1, MetricsDocumentedTests.Value(metrics, "iot_gateway_command_transitions_total{status=\"Completed\"}"));
            Assert.Equal(1, MetricsDocumentedTests.Value(metrics, "iot_gateway_command_round_trip_seconds_count"));
            Assert.Equal(0, MetricsDocumentedTests.Value(metrics, "iot_gateway_ingest_queue_length"));
            Assert.Equal(2, MetricsDocumentedTests.Value(metrics, "iot_gateway_messages_received_total{kind=\"Data\"}"));

            // A graceful stop (SIGTERM) exits cleanly and keeps the retained presence for the next start.
            gateway.Terminate();
            await gateway.WaitForExitAsync(Timeout);
            Assert.Equal(0, gateway.ExitCode);
            Assert.True(File.Exists(Path.Combine(workingDirectory, "data", "retained-messages.json")), "retained messages are saved");

            // The next start reuses the key without printing it again.
            await using var again = GatewayProcess.Start(BuiltGateway.Dll, workingDirectory);
            await again.WaitUntilReadyAsync(Timeout);
            Assert.DoesNotContain(again.Output, l => l.Contains(apiKey, StringComparison.Ordinal));
            using var http2 = new HttpClient { BaseAddress = again.BaseAddress };
            http2.DefaultRequestHeaders.Add("X-API-Key", apiKey);
            Assert.Equal(HttpStatusCode.OK, (await http2.GetAsync("/api/devices/first-device")).StatusCode);
            var stored = await http2.GetFromJsonAsync<DeviceView>("/api/devices/first-device", GatewayApp.Json);
            Assert.True(stored!.SignedIn, "presence survived the restart");

            // The embedded broker itself still holds the retained SIGN_IN: a new subscriber gets it at once.
            await using var observer = await TestMqttClient.ConnectAsync("127.0.0.1", 1883, "observer");
            await observer.SubscribeAsync("iot/register/+");
            var retained = await observer.WaitForMessageAsync(m => m.Topic == "iot/register/first-device", Timeout);
            Assert.True(retained.Retain);
            Assert.Equal("SIGN_IN", retained.Payload);
        }
        finally
        {
            Directory.Delete(workingDirectory, recursive: true);
        }
    }

    private static bool PortInUse(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Any, port);
            listener.Start();
            return false;
        }
        catch (SocketException)
        {
            return true;
        }
    }
}
