using System.Diagnostics.Metrics;
using IotGateway.Data;

namespace IotGateway;

// Every instrument the gateway publishes; exported at /metrics.
public sealed class GatewayMetrics
{
    public const string MeterName = "IotGateway";

    private readonly Counter<long> _messagesReceived;
    private readonly Counter<long> _readingsStored;
    private readonly Counter<long> _readingsDuplicate;
    private readonly Counter<long> _messagesRejected;
    private readonly Histogram<double> _ingestLag;
    private readonly Counter<long> _commandTransitions;
    private readonly Histogram<double> _commandRoundTrip;
    private readonly Counter<long> _brokerConnects;
    private readonly Counter<long> _brokerDisconnects;

    public GatewayMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _messagesReceived = meter.CreateCounter<long>("iot_gateway.messages.received", "{message}", "MQTT messages received, by kind.");
        _readingsStored = meter.CreateCounter<long>("iot_gateway.readings.stored", "{reading}", "Telemetry readings committed to the database.");
        _readingsDuplicate = meter.CreateCounter<long>("iot_gateway.readings.duplicate", "{reading}", "Redelivered readings dropped by their message id.");
        _messagesRejected = meter.CreateCounter<long>("iot_gateway.messages.rejected", "{message}", "Messages not stored, by reason.");
        _ingestLag = meter.CreateHistogram<double>("iot_gateway.ingest.lag", "s", "Time from receipt to commit.");
        _commandTransitions = meter.CreateCounter<long>("iot_gateway.commands.transitions", "{command}", "Commands entering a status.");
        _commandRoundTrip = meter.CreateHistogram<double>("iot_gateway.commands.round_trip", "s", "Time from queueing a command to the device's answer.");
        _brokerConnects = meter.CreateCounter<long>("iot_gateway.broker.connects", "{connect}", "Successful connections to the broker.");
        _brokerDisconnects = meter.CreateCounter<long>("iot_gateway.broker.disconnects", "{disconnect}", "Lost connections to the broker.");
        meter.CreateObservableGauge("iot_gateway.broker.connected", () => BrokerConnected ? 1 : 0, "{state}", "1 while the gateway is connected to the broker.");
        meter.CreateObservableGauge("iot_gateway.devices.signed_in", () => SignedInDevices, "{device}", "Devices whose last presence message was SIGN_IN.");
        meter.CreateObservableGauge("iot_gateway.ingest.queue_length", () => QueueLength?.Invoke() ?? 0, "{message}", "Messages waiting for the database writer.");
    }

    public bool BrokerConnected { get; set; }
    public int SignedInDevices { get; set; }
    public Func<int>? QueueLength { get; set; }

    public void MessageReceived(string kind) => _messagesReceived.Add(1, new KeyValuePair<string, object?>("kind", kind));

    public void ReadingsStored(int count) => _readingsStored.Add(count);

    public void ReadingsDuplicate(int count) => _readingsDuplicate.Add(count);

    public void MessageRejected(string reason) => _messagesRejected.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void IngestLag(TimeSpan lag) => _ingestLag.Record(lag.TotalSeconds);

    public void CommandTransition(CommandStatus status, int count = 1) =>
        _commandTransitions.Add(count, new KeyValuePair<string, object?>("status", status.ToString()));

    public void CommandRoundTrip(TimeSpan elapsed) => _commandRoundTrip.Record(elapsed.TotalSeconds);

    public void BrokerConnect() => _brokerConnects.Add(1);

    public void BrokerDisconnect() => _brokerDisconnects.Add(1);
}
