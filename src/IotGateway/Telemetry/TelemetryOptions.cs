using System.ComponentModel.DataAnnotations;

namespace IotGateway.Telemetry;

public sealed class TelemetryOptions
{
    public const string Section = "Telemetry";

    // Readings older than this many days are deleted in the background; 0 (the default) keeps every reading.
    [Range(0, 36_500)]
    public int RetentionDays { get; set; }

    // Readings deleted per transaction. Ingest waits for each (they share the one writer), so it stays small.
    [Range(1, 100_000)]
    public int RetentionBatchSize { get; set; } = 1000;

    // How often the retention run starts (and once at start-up).
    [Range(0.01, 10_080)]
    public double RetentionIntervalMinutes { get; set; } = 60;
}
