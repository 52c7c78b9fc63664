using IotGateway.Commands;

namespace IotGateway.Tests.Gateway;

// The commands an MQTT test device received, against what the gateway stored for it.
internal static class ReceivedCommands
{
    // Every command stored for the device (there must be `count`) reached it once, in queue order.
    public static async Task AssertAllInQueueOrderAsync(GatewayApp gateway, TestMqttClient device, int count, TimeSpan timeout)
    {
        var stored = await gateway.Http.GetFromJsonAsync<Page<CommandView>>($"/api/devices/{device.ClientId}/commands?limit=1000", GatewayApp.Json);
        var expected = stored!.Items.Select(c => c.Id.ToString()).Reverse().ToList();
        Assert.Equal(count, expected.Count);
        await Eventually.UntilAsync(() => Ids(device).Count >= expected.Count, timeout, $"{device.ClientId} receives its {expected.Count} commands");
        Assert.Equal(expected, Ids(device));
    }

    private static List<string> Ids(TestMqttClient device) => device.ReceivedMessages
        .Where(m => m.Topic == TopicRoots.Default.For(device.ClientId).CommandRequest)
        .Select(m => JsonDocument.Parse(m.Payload).RootElement.GetProperty("uuid").GetString()!)
        .ToList();
}
