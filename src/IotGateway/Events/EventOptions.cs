using System.ComponentModel.DataAnnotations;

namespace IotGateway.Events;

public sealed class EventOptions
{
    public const string Section = "Events";

    // Events a client of GET /api/events may fall behind by; one more and it is dropped, so publishing never waits.
    [Range(16, 1_000_000)]
    public int ClientBuffer { get; set; } = 1024;

    // A comment line this often keeps proxies and load balancers from closing a quiet stream.
    [Range(0.05, 3600)]
    public double HeartbeatSeconds { get; set; } = 15;

    // How long a token from POST /api/events/tokens may be used to open a stream (EventSource cannot send headers).
    [Range(1, 3600)]
    public int TokenLifetimeSeconds { get; set; } = 60;
}
