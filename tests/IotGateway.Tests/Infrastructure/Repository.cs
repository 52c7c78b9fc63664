namespace IotGateway.Tests.Infrastructure;

// The checkout the tests run from: the folder above the test binaries that holds IotGateway.sln.
public static class Repository
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "IotGateway.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new DirectoryNotFoundException($"No folder above {AppContext.BaseDirectory} contains IotGateway.sln.");
    }
}
