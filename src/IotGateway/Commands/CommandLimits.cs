namespace IotGateway.Commands;

public static class CommandLimits
{
    public const int MaxNameLength = 64;
}
