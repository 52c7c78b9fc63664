using System.Diagnostics.Metrics;
using IotGateway.Ingest;
using IotGateway.Mqtt;
using Microsoft.Extensions.Diagnostics.Metrics;
using OpenTelemetry.Metrics;

namespace IotGateway.Observability;

// Every instrument the gateway publishes. They come from this host's IMeterFactory, so each host (and each test host
// in one process) has its own; OpenTelemetry exports them at /metrics as Prometheus text: a dotted name becomes
// underscores, a counter gains _total, a unit of seconds _seconds (iot_gateway.ingest.lag -> iot_gateway_ingest_lag_seconds).
public sealed class GatewayMetrics : IHostedService
{
    public const string MeterName = "IotGateway";

    // Reasons known in advance, exported at 0 from the start; a new reason still appears at its first use.
    private static readonly string[] RejectReasons =
    [
        "oversized", "empty", "unreadable", "unknown-topic", "bad-device-id", "bad-message-id", "bad-command-response", "bad-register-payload",
        "unknown-command", "command-already-finished", "refused-by-database",
    ];

    private readonly Counter<long> _messagesReceived;
    private readonly Counter<long> _readingsStored;
    private readonly Counter<long> _readingsDuplicate;
    private readonly Counter<long> _messagesRejected;
    private readonly Histogram<double> _ingestLag;
    private readonly Counter<long> _commandTransitions;
    private readonly Histogram<double> _commandRoundTrip;
    private readonly Counter<long> _brokerConnects;
    private readonly Counter<long> _brokerDisconnects;
    private readonly Counter<long> _eventClientsDropped;
    private readonly Counter<long> _retentionDeleted;
    private readonly Counter<long> _brokerQueueDropped;
    private int _brokerConnected;
    private int _signedInDevices;
    private int _eventClients;
    private double _retentionLastRun;

    public GatewayMetrics(IMeterFactory meters, IngestQueue queue)
    {
        var meter = meters.Create(MeterName);
        _messagesReceived = meter.CreateCounter<long>("iot_gateway.messages.received", "{message}",
            "MQTT messages received from devices, by kind (Data, CommandResponse, Register).");
        _readingsStored = meter.CreateCounter<long>("iot_gateway.readings.stored", "{reading}", "Telemetry readings committed to the database.");
        _readingsDuplicate = meter.CreateCounter<long>("iot_gateway.readings.duplicate", "{reading}",
            "Redelivered readings dropped because their message id was already stored.");
        _messagesRejected = meter.CreateCounter<long>("iot_gateway.messages.rejected", "{message}",
            "Messages not stored, by reason (oversized, empty, unknown-topic, bad-command-response, ...).");
        _ingestLag = meter.CreateHistogram("iot_gateway.ingest.lag", "s", "Time from a batch's first message arriving to its commit.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Doubling(0.0005, 16) });
        _commandTransitions = meter.CreateCounter<long>("iot_gateway.command.transitions", "{command}",
            "Commands entering a status (Pending, Published, Completed, Failed, Expired, Cancelled).");
        _commandRoundTrip = meter.CreateHistogram("iot_gateway.command.round_trip", "s", "Time from queueing a command to storing the device's answer.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Doubling(0.001, 20) });
        _brokerConnects = meter.CreateCounter<long>("iot_gateway.broker.connects", "{connect}", "Successful connections to the broker.");
        _brokerDisconnects = meter.CreateCounter<long>("iot_gateway.broker.disconnects", "{disconnect}", "Lost connections to the broker.");
        meter.CreateObservableGauge("iot_gateway.broker.connected", () => Volatile.Read(ref _brokerConnected), null,
            "1 while the gateway is connected to the broker, else 0.");
        meter.CreateObservableGauge("iot_gateway.devices.signed_in", () => Volatile.Read(ref _signedInDevices), "{device}",
            "Devices whose last presence message was SIGN_IN.");
        meter.CreateObservableGauge("iot_gateway.ingest.queue_length", () => queue.Count, "{message}",
            "Messages received and waiting for the database writer.");
        meter.CreateObservableGauge("iot_gateway.event.clients", () => Volatile.Read(ref _eventClients), "{client}", "Clients connected to GET /api/events.");
        _eventClientsDropped = meter.CreateCounter<long>("iot_gateway.event.clients_dropped", "{client}",
            "Event stream clients dropped because they fell Events:ClientBuffer events behind.");
        _retentionDeleted = meter.CreateCounter<long>("iot_gateway.retention.deleted", "{reading}",
            "Readings deleted because they were older than Telemetry:RetentionDays.");
        _brokerQueueDropped = meter.CreateCounter<long>("iot_gateway.embedded_broker.messages_dropped", "{message}",
            "Messages the embedded broker dropped from a client's queue at Mqtt:Embedded:MaxPendingMessagesPerClient.");
        meter.CreateObservableGauge("iot_gateway.retention.last_run_timestamp", () => Volatile.Read(ref _retentionLastRun), "s",
            "When the last retention run finished (Unix time); 0 before the first or with retention off.");
    }

    public bool BrokerConnected
    {
        set => Volatile.Write(ref _brokerConnected, value ? 1 : 0);
    }

    public int SignedInDevices
    {
        set => Volatile.Write(ref _signedInDevices, value);
    }

    public int EventClients
    {
        set => Volatile.Write(ref _eventClients, value);
    }

    public void EventClientDropped() => _eventClientsDropped.Add(1);

    public void EmbeddedBrokerMessageDropped() => _brokerQueueDropped.Add(1);

    public void RetentionRun(int deleted, DateTimeOffset finishedAt)
    {
        _retentionDeleted.Add(deleted);
        Volatile.Write(ref _retentionLastRun, finishedAt.ToUnixTimeMilliseconds() / 1000.0);
    }

    public void MessagesReceived(string kind, int count) => _messagesReceived.Add(count, new KeyValuePair<string, object?>("kind", kind));

    public void ReadingsStored(int count) => _readingsStored.Add(count);

    public void ReadingsDuplicate(int count) => _readingsDuplicate.Add(count);

    public void MessageRejected(string reason) => _messagesRejected.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void IngestLag(TimeSpan lag) => _ingestLag.Record(lag.TotalSeconds);

    public void CommandTransition(CommandStatus status, int count = 1) =>
        _commandTransitions.Add(count, new KeyValuePair<string, object?>("status", status.ToString()));

    public void CommandRoundTrip(TimeSpan elapsed) => _commandRoundTrip.Record(elapsed.TotalSeconds);

    public void BrokerConnect() => _brokerConnects.Add(1);

    public void BrokerDisconnect() => _brokerDisconnects.Add(1);

    // Every series with a known label set exists from the start, at 0, as Prometheus users expect. Done when the host
    // starts: the exporter listens from then on, and a measurement taken before would be lost.
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var kind in Enum.GetNames<TopicKind>())
        {
            MessagesReceived(kind, 0);
        }

        foreach (var reason in RejectReasons)
        {
            _messagesRejected.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        foreach (var status in Enum.GetValues<CommandStatus>())
        {
            CommandTransition(status, 0);
        }

        ReadingsStored(0);
        ReadingsDuplicate(0);
        _brokerConnects.Add(0);
        _brokerDisconnects.Add(0);
        _eventClientsDropped.Add(0);
        _retentionDeleted.Add(0);
        _brokerQueueDropped.Add(0);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static double[] Doubling(double first, int count) => [.. Enumerable.Range(0, count).Select(i => first * Math.Pow(2, i))];
}

public static class MetricsSetup
{
    public static IServiceCollection AddGatewayMetrics(this IServiceCollection services)
    {
        services.AddSingleton<GatewayMetrics>();
        services.AddHostedService(sp => sp.GetRequiredService<GatewayMetrics>());
        // Answers are computed per scrape: the exporter's default response cache would show a scrape's numbers twice.
        services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        // Which meters are exported. Local: only this host's (its IMeterFactory's), so hosts in one process do not mix;
        // the runtime's meter is process-wide. Nothing else (MsQuic's, for one, would add some thirty series at 0).
        services.AddMetrics(metrics => metrics
            .EnableMetrics(GatewayMetrics.MeterName, scopes: MeterScope.Local)
            .EnableMetrics("Microsoft.AspNetCore.Hosting", scopes: MeterScope.Local)
            .EnableMetrics("Microsoft.AspNetCore.Server.Kestrel", scopes: MeterScope.Local)
            .EnableMetrics("System.Runtime", scopes: MeterScope.Global));
        return services;
    }
}
