using System.ComponentModel.DataAnnotations;

namespace IotGateway.Ingest;

public sealed class IngestOptions
{
    public const string Section = "Ingest";

    // A payload larger than this is rejected (logged and counted), never copied into memory.
    [Range(1, 16 * 1024 * 1024)]
    public int MaxPayloadBytes { get; set; } = 256 * 1024;

    [Range(1, 1_000_000)]
    public int QueueCapacity { get; set; } = 16384;

    // Messages stored per transaction.
    [Range(1, 100_000)]
    public int MaxBatchSize { get; set; } = 8192;

    [Range(0.05, 60)]
    public double RetryMaxDelaySeconds { get; set; } = 5;

    // Readiness fails when messages are queued and the writer has committed nothing for this long. A batch of the
    // largest size commits in well under a second here; a lock or a full disk is reported at once, by its error.
    [Range(1, 3600)]
    public double StallSeconds { get; set; } = 30;
}
