namespace IotGateway.Api;

public static class RequestLimits
{
    // A command with its arguments; anything bigger is almost certainly a mistake or an attack.
    public const long MaxCommandBodyBytes = 64 * 1024;

    // A bulk request names up to Commands:MaxBulkDevices devices.
    public const long MaxBulkBodyBytes = 8 * 1024 * 1024;
}
