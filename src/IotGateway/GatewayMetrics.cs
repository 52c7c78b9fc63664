using IotGateway.Data;
using IotGateway.Telemetry;
using Prometheus;

namespace IotGateway;

// Every instrument the gateway publishes at /metrics (Prometheus text), with the runtime's and ASP.NET Core's.
public sealed class GatewayMetrics
{
    private static readonly Counter MessagesReceivedTotal = Metrics.CreateCounter(
        "iot_gateway_messages_received_total", "MQTT messages received from devices, by kind (Data, CommandResponse, Register).", "kind");

    private static readonly Counter ReadingsStoredTotal = Metrics.CreateCounter(
        "iot_gateway_readings_stored_total", "Telemetry readings committed to the database.");

    private static readonly Counter ReadingsDuplicateTotal = Metrics.CreateCounter(
        "iot_gateway_readings_duplicate_total", "Redelivered readings dropped because their message id was already stored.");

    private static readonly Counter MessagesRejectedTotal = Metrics.CreateCounter(
        "iot_gateway_messages_rejected_total", "Messages not stored, by reason (oversized, empty, unknown-topic, bad-command-response, ...).", "reason");

    private static readonly Histogram IngestLagSeconds = Metrics.CreateHistogram(
        "iot_gateway_ingest_lag_seconds", "Time from a batch's first message arriving to its commit.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

    private static readonly Counter CommandTransitionsTotal = Metrics.CreateCounter(
        "iot_gateway_command_transitions_total", "Commands entering a status (Pending, Published, Completed, Failed, Expired, Cancelled).", "status");

    private static readonly Histogram CommandRoundTripSeconds = Metrics.CreateHistogram(
        "iot_gateway_command_round_trip_seconds", "Time from queueing a command to storing the device's answer.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 20) });

    private static readonly Counter BrokerConnectsTotal = Metrics.CreateCounter(
        "iot_gateway_broker_connects_total", "Successful connections to the broker.");

    private static readonly Counter BrokerDisconnectsTotal = Metrics.CreateCounter(
        "iot_gateway_broker_disconnects_total", "Lost connections to the broker.");

    private static readonly Gauge BrokerConnectedGauge = Metrics.CreateGauge(
        "iot_gateway_broker_connected", "1 while the gateway is connected to the broker, else 0.");

    private static readonly Gauge SignedInDevicesGauge = Metrics.CreateGauge(
        "iot_gateway_devices_signed_in", "Devices whose last presence message was SIGN_IN.");

    private static readonly Gauge IngestQueueLengthGauge = Metrics.CreateGauge(
        "iot_gateway_ingest_queue_length", "Messages received and waiting for the database writer.");

    private static readonly Gauge EventClientsGauge = Metrics.CreateGauge(
        "iot_gateway_event_clients", "Clients connected to GET /api/events.");

    private static readonly Counter EventClientsDroppedTotal = Metrics.CreateCounter(
        "iot_gateway_event_clients_dropped_total", "Event stream clients dropped because they fell Events:ClientBuffer events behind.");

    private static readonly Counter RetentionDeletedTotal = Metrics.CreateCounter(
        "iot_gateway_retention_deleted_total", "Readings deleted because they were older than Telemetry:RetentionDays.");

    private static readonly Gauge RetentionLastRunGauge = Metrics.CreateGauge(
        "iot_gateway_retention_last_run_timestamp_seconds", "When the last retention run finished (Unix time); 0 before the first or with retention off.");

    // The registry is process-wide, so its callback is registered once and reads the queue of the newest host
    // (there is one in production; test hosts come one after another).
    private static IngestQueue? s_queue;

    static GatewayMetrics() =>
        Metrics.DefaultRegistry.AddBeforeCollectCallback(() => IngestQueueLengthGauge.Set(Volatile.Read(ref s_queue)?.Count ?? 0));

    public GatewayMetrics(IngestQueue queue) => Volatile.Write(ref s_queue, queue);

    public bool BrokerConnected
    {
        set => BrokerConnectedGauge.Set(value ? 1 : 0);
    }

    public int SignedInDevices
    {
        set => SignedInDevicesGauge.Set(value);
    }

    public int EventClients
    {
        set => EventClientsGauge.Set(value);
    }

    public void EventClientDropped() => EventClientsDroppedTotal.Inc();

    public void RetentionRun(int deleted, DateTimeOffset finishedAt)
    {
        RetentionDeletedTotal.Inc(deleted);
        RetentionLastRunGauge.Set(finishedAt.ToUnixTimeMilliseconds() / 1000.0);
    }

    public void MessagesReceived(string kind, int count) => MessagesReceivedTotal.WithLabels(kind).Inc(count);

    public void ReadingsStored(int count) => ReadingsStoredTotal.Inc(count);

    public void ReadingsDuplicate(int count) => ReadingsDuplicateTotal.Inc(count);

    public void MessageRejected(string reason) => MessagesRejectedTotal.WithLabels(reason).Inc();

    public void IngestLag(TimeSpan lag) => IngestLagSeconds.Observe(lag.TotalSeconds);

    public void CommandTransition(CommandStatus status, int count = 1) => CommandTransitionsTotal.WithLabels(status.ToString()).Inc(count);

    public void CommandRoundTrip(TimeSpan elapsed) => CommandRoundTripSeconds.Observe(elapsed.TotalSeconds);

    public void BrokerConnect() => BrokerConnectsTotal.Inc();

    public void BrokerDisconnect() => BrokerDisconnectsTotal.Inc();
}
