namespace IotGateway.Api;

public static class RequestLimits
{
    // A command with its arguments; anything bigger is almost certainly a mistake or an attack.
    public const long MaxCommandBodyBytes = 64 * 1024;

    // A command's payload (its JSON text), on the single and the bulk route alike: a bulk request stores it once per
    // device, so a payload the single route refuses must never get in that way.
    public const int MaxCommandPayloadBytes = 48 * 1024;

    // A bulk request: one command body and Commands:MaxBulkDevices ids of the longest ASCII form ("…", with a comma).
    public static long MaxBulkBodyBytes(int maxBulkDevices) => MaxCommandBodyBytes + (maxBulkDevices * (Devices.DeviceIds.MaxLength + 3L));
}
