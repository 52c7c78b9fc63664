namespace IotGateway;

public static class ConfigurationBinding
{
    // A misspelt key (Mqtt__Topic__Data) would otherwise be ignored silently; it stops the service instead.
    public static void RejectUnknownKeys(BinderOptions options) => options.ErrorOnUnknownConfiguration = true;
}
