using Xunit.Sdk;

namespace IotGateway.Tests.Mqtt.Conformance;

// The same conformance points (ConformancePoints) against the embedded broker in the real gateway and against a
// real Mosquitto, so the README can say where the embedded broker stands. A point a broker is known to miss is
// listed with the reason, and must still be missed: when it starts to pass, the list (and the README) is wrong.
public abstract class BrokerConformanceTests
{
    public static TheoryData<string> Points => [.. ConformancePoints.All.Keys];

    protected abstract Task<BrokerEndpoint> BrokerAsync();

    protected abstract IReadOnlyDictionary<string, string> KnownMisses { get; }

    [SkippableTheory]
    [MemberData(nameof(Points), MemberType = typeof(BrokerConformanceTests))]
    public async Task BrokerKeepsThePoint(string point)
    {
        var broker = await BrokerAsync();
        var id = $"{point}-{broker.Name}-{Guid.NewGuid():N}"[..Math.Min(64, point.Length + broker.Name.Length + 14)];
        var check = ConformancePoints.All[point];
        if (!KnownMisses.TryGetValue(point, out var reason))
        {
            await check(broker, id);
            return;
        }

        var miss = await Record.ExceptionAsync(() => check(broker, id));
        Assert.True(miss is XunitException or TimeoutException or MqttConnectRefusedException or InvalidOperationException,
            $"{broker.Name} is listed as missing '{point}' ({reason}) but it passed, or failed otherwise: {miss?.GetType().Name} {miss?.Message}");
    }
}

public sealed class EmbeddedBrokerConformanceTests(EmbeddedBrokerConformanceTests.Broker broker)
    : EmbeddedConformanceTests(broker), IClassFixture<EmbeddedBrokerConformanceTests.Broker>
{
    public sealed class Broker() : EmbeddedBroker(DatabaseProvider.Sqlite);
}

// The same points with the sessions kept in PostgreSQL.
public sealed class PostgresEmbeddedBrokerConformanceTests(PostgresEmbeddedBrokerConformanceTests.Broker broker)
    : EmbeddedConformanceTests(broker), IClassFixture<PostgresEmbeddedBrokerConformanceTests.Broker>
{
    public sealed class Broker() : EmbeddedBroker(DatabaseProvider.PostgreSQL);
}

public abstract class EmbeddedConformanceTests(EmbeddedConformanceTests.EmbeddedBroker broker) : BrokerConformanceTests
{
    // Also in the README ("The embedded broker").
    private static readonly Dictionary<string, string> Misses = new()
    {
        ["shared_subscriptions"] = "MQTTnet 5.2 answers a $share/ subscription with 0x9E before any interceptor runs",
    };

    protected override IReadOnlyDictionary<string, string> KnownMisses => Misses;

    protected override Task<BrokerEndpoint> BrokerAsync()
    {
        if (broker.Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return Task.FromResult(broker.Endpoint!);
    }

    // One gateway for all points: each point uses its own client ids and topics.
    public abstract class EmbeddedBroker(DatabaseProvider provider) : IAsyncLifetime
    {
        private GatewayApp? _gateway;

        public DatabaseProvider Provider => provider;

        public BrokerEndpoint? Endpoint { get; private set; }

        public async Task InitializeAsync()
        {
            if (provider == DatabaseProvider.PostgreSQL && !PostgresCluster.IsInstalled)
            {
                return; // each point skips (or fails under CI)
            }

            var (gateway, port) = await GatewayApp.StartEmbeddedAsync(provider: provider);
            _gateway = gateway;
            Endpoint = new BrokerEndpoint("embedded", "127.0.0.1", port);
        }

        public async Task DisposeAsync()
        {
            if (_gateway is not null)
            {
                await _gateway.DisposeAsync();
            }
        }
    }
}

public sealed class MosquittoConformanceTests(MosquittoConformanceTests.Broker broker)
    : BrokerConformanceTests, IClassFixture<MosquittoConformanceTests.Broker>
{
    // Also in the README ("The embedded broker").
    private static readonly Dictionary<string, string> Misses = new()
    {
        ["flow_control"] = "Mosquitto 2.0.11 sends two more messages for the first PUBACK: 3 await acknowledgement under a Receive Maximum of 2",
    };

    protected override IReadOnlyDictionary<string, string> KnownMisses => Misses;

    protected override Task<BrokerEndpoint> BrokerAsync()
    {
        Requires.Mosquitto();
        return Task.FromResult(broker.Endpoint!);
    }

    public sealed class Broker : IAsyncLifetime
    {
        private MosquittoBroker? _mosquitto;

        public BrokerEndpoint? Endpoint { get; private set; }

        public async Task InitializeAsync()
        {
            if (MosquittoBroker.IsInstalled)
            {
                _mosquitto = await MosquittoBroker.StartAsync();
                Endpoint = new BrokerEndpoint("mosquitto", _mosquitto.Host, _mosquitto.Port);
            }
        }

        public async Task DisposeAsync()
        {
            if (_mosquitto is not null)
            {
                await _mosquitto.DisposeAsync();
            }
        }
    }
}
