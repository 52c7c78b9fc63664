using IotGateway.Commands;
using IotGateway.Ingest;
using IotGateway.Mqtt;
using IotGateway.Tcp;
using IotGateway.Tests.Tcp;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace IotGateway.Tests.Gateway;

// The host starts hosted services in registration order and stops them in reverse; the gateway relies on that
// order, which Program.cs's AddXxx() calls set. This test is where the order is written down, so that moving a
// registration breaks a test rather than a shutdown.
public sealed class HostedServiceOrderTests
{
    [Fact]
    public async Task HostedServicesStartAndStopInTheOrderTheGatewayReliesOn()
    {
        await using var gateway = await TcpGateway.StartAsync();
        var order = gateway.App.Services.GetServices<IHostedService>().Select(s => s.GetType()).ToList();
        int At(Type type)
        {
            var index = order.IndexOf(type);
            Assert.True(index >= 0, $"{type.Name} is a hosted service; the services are: {string.Join(", ", order.Select(t => t.Name))}");
            return index;
        }

        // The database opens before any service that uses it or the broker (the metrics and the cluster signals, which
        // only listen, may come first).
        Assert.All([typeof(EmbeddedBroker), typeof(MqttConnection), typeof(IngestWriter), typeof(CommandDispatcher), typeof(TcpDeviceListener)],
            t => Assert.True(At(typeof(DatabaseStartup)) < At(t), $"DatabaseStartup before {t.Name}"));
        // The embedded broker listens before the gateway's client connects to it, and stops after it has disconnected.
        Assert.True(At(typeof(EmbeddedBroker)) < At(typeof(MqttConnection)), "EmbeddedBroker before MqttConnection");
        // The ingest writer stops before the connection, so it stores and acknowledges what it holds while it can.
        Assert.True(At(typeof(MqttConnection)) < At(typeof(IngestWriter)), "MqttConnection before IngestWriter");
        // Lanes stop (and release their leases) while the connection and the database are still there.
        Assert.True(At(typeof(MqttConnection)) < At(typeof(CommandDispatcher)), "MqttConnection before CommandDispatcher");
        // The TCP listener stops first of these: the sign-outs of its closing connections still reach the ingest writer.
        Assert.True(At(typeof(IngestWriter)) < At(typeof(TcpDeviceListener)), "IngestWriter before TcpDeviceListener");
    }
}
