namespace IotGateway.Bench.Infrastructure;

/// <summary>Where the repository and the gateway's build output are.</summary>
public sealed record RepositoryLayout(string Root, string GatewayDll, string Configuration)
{
    private const string SolutionFile = "IotGateway.sln";

    /// <summary>
    /// Finds the repository root by walking up to IotGateway.sln, first from the working directory, then from
    /// the bench's own binary (so `dotnet run` from anywhere inside the repository and a copied binary both work).
    /// </summary>
    public static RepositoryLayout Locate(string configuration)
    {
        var root = FindRoot(Directory.GetCurrentDirectory()) ?? FindRoot(AppContext.BaseDirectory)
            ?? throw new BenchFailure($"Could not find {SolutionFile} in the working directory or any parent: run the bench from inside the repository.");

        // The gateway is measured from its build output, as it would be deployed, not through `dotnet run`.
        var dll = Path.Combine(root, "src", "IotGateway", "bin", configuration, "net10.0", "IotGateway.dll");
        if (!File.Exists(dll))
        {
            throw new BenchFailure(
                $"The gateway is not built: {dll} is missing. Build it first: `cd {root} && dotnet build -c {configuration} src/IotGateway`.");
        }

        return new RepositoryLayout(root, dll, configuration);
    }

    private static string? FindRoot(string start)
    {
        for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, SolutionFile)))
            {
                return directory.FullName;
            }
        }

        return null;
    }
}
