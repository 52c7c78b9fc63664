namespace IotGateway.Hosting;

public static class StartFailure
{
    // EX_UNAVAILABLE (sysexits.h): something the gateway needs at start, such as its ports, is not available.
    public const int ExitCode = 69;
}
