using System.ComponentModel.DataAnnotations;

namespace IotGateway.Events;

public sealed class EventOptions
{
    public const string Section = "Events";

    // Events a client of GET /api/events may fall behind by; one more and it is dropped, so publishing never waits.
    // Twice Ingest:MaxBatchSize: a committed batch arrives all at once, and a client that keeps up must not lose it.
    // The events are shared between clients: a client's buffer costs a reference per event, the events themselves
    // (about 300 bytes a reading) stay alive while any client still has to send them.
    [Range(16, 1_000_000)]
    public int ClientBuffer { get; set; } = 16384;

    // A comment line this often keeps proxies and load balancers from closing a quiet stream.
    [Range(0.05, 3600)]
    public double HeartbeatSeconds { get; set; } = 15;

    // How long a token from POST /api/events/tokens may be used to open a stream (EventSource cannot send headers).
    [Range(1, 3600)]
    public int TokenLifetimeSeconds { get; set; } = 60;
}
