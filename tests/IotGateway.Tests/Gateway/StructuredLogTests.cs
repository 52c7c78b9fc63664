using System.Globalization;

namespace IotGateway.Tests.Gateway;

// The container logs JSON (Logging__Console__FormatterName=json in the Dockerfile); events carry the device id
// and command id as fields a log pipeline can filter on, not only inside the message text.
public sealed class StructuredLogTests
{
    [Fact]
    public async Task JsonConsoleLogsCarryDeviceIdsAsFields()
    {
        var workingDirectory = Directory.CreateTempSubdirectory("iotgw-json-").FullName;
        var mqttPort = FreePort.OnLoopback();
        try
        {
            await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, workingDirectory, new Dictionary<string, string>
            {
                ["Logging__Console__FormatterName"] = "json",
                // Sign-in and sign-out are Debug: a fleet would otherwise fill the log.
                ["Logging__LogLevel__IotGateway.Ingest.IngestWriter"] = "Debug",
                ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
                ["Mqtt__Embedded__Port"] = mqttPort.ToString(CultureInfo.InvariantCulture),
                ["Api__Keys__0__Key"] = GatewayApp.OperatorKey,
            });
            await gateway.WaitUntilReadyAsync(TimeSpan.FromSeconds(60));

            await using (var device = await TestMqttClient.ConnectAsync("127.0.0.1", mqttPort, "json-device"))
            {
                await device.PublishAsync(TopicRoots.Default.For("json-device").Register, "SIGN_IN", retain: true);
            }

            var presence = await Eventually.UntilAsync(() => Task.FromResult(gateway.Output.Select(TryParse)
                    .FirstOrDefault(e => e is { } json && json.TryGetProperty("State", out var state)
                        && state.TryGetProperty("DeviceId", out var id) && id.GetString() == "json-device")),
                TimeSpan.FromSeconds(20), "a JSON log entry names the device in a field");
            Assert.Equal("SIGN_IN", presence.GetProperty("State").GetProperty("Presence").GetString());
            Assert.Equal("IotGateway.Ingest.IngestWriter", presence.GetProperty("Category").GetString());
        }
        finally
        {
            Directory.Delete(workingDirectory, recursive: true);
        }
    }

    private static JsonElement? TryParse(string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
