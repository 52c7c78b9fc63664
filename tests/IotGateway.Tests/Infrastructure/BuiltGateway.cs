using IotGateway.Testing;

namespace IotGateway.Tests.Infrastructure;

public static class BuiltGateway
{
    /// <summary>The gateway's build output of the tests' own configuration (tests/IotGateway.Tests/bin/Debug → src/IotGateway/bin/Debug).</summary>
    public static string Dll
    {
        get
        {
            var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
            var dll = GatewayProcess.BuildOutputDll(Repository.Root, configuration);
            return File.Exists(dll) ? dll : throw new FileNotFoundException("Build the gateway first (dotnet build).", dll);
        }
    }
}
