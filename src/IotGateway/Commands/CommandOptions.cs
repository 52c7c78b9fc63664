using System.ComponentModel.DataAnnotations;

namespace IotGateway.Commands;

public sealed class CommandOptions
{
    public const string Section = "Commands";

    // TTL of a command queued without ttlSeconds.
    [Range(1, 31_536_000)]
    public int DefaultTtlSeconds { get; set; } = 300;

    [Range(1, 31_536_000)]
    public int MaxTtlSeconds { get; set; } = 7 * 24 * 3600;

    // How often commands whose TTL ran out are marked Expired.
    [Range(0.05, 3600)]
    public double ExpirySweepSeconds { get; set; } = 1;

    // Devices whose commands are published at the same time (each device's one after another, in queue order).
    [Range(1, 100_000)]
    public int MaxConcurrentLanes { get; set; } = 256;

    // How long an instance's claim on a device's lane lasts unless renewed: an instance that dies mid-publish has its
    // devices taken over by another instance after at most this long (see "Running several gateways").
    [Range(2, 3600)]
    public int LeaseSeconds { get; set; } = 30;

    [Range(1, 1_000_000)]
    public int MaxBulkDevices { get; set; } = 100_000;

    [ValidateObjectMembers]
    public HeartbeatOptions Heartbeat { get; set; } = new();
}

// The article's periodic command: every IntervalSeconds, Command is queued for each signed-in device.
public sealed class HeartbeatOptions
{
    public bool Enabled { get; set; }

    [Required]
    [StringLength(CommandLimits.MaxNameLength, MinimumLength = 1)]
    public string Command { get; set; } = "PING";

    [Range(0.1, 86_400)]
    public double IntervalSeconds { get; set; } = 10;

    // Defaults to Commands:DefaultTtlSeconds.
    [Range(1, 31_536_000)]
    public int? TtlSeconds { get; set; }
}

// Source-generated: validates nested options ([ValidateObjectMembers]) as well, which ValidateDataAnnotations does not.
[OptionsValidator]
public sealed partial class CommandOptionsValidator : IValidateOptions<CommandOptions>;
