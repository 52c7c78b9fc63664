namespace IotGateway.Bench.Infrastructure;

/// <summary>Where the repository and the gateway's build output are.</summary>
public sealed record RepositoryLayout(string Root, string GatewayDll, string Configuration, string Description)
{
    /// <summary>What `dotnet publish -c Release -r linux-x64 src/IotGateway` writes, as the Dockerfile publishes it.</summary>
    public const string PublishCommand = "dotnet publish -c Release -r linux-x64 src/IotGateway";

    /// <summary>
    /// Finds the repository root by walking up to IotGateway.sln, first from the working directory, then from
    /// the bench's own binary (so `dotnet run` from anywhere inside the repository and a copied binary both work).
    /// <paramref name="gateway"/> names the gateway to run: "build" (the build output of that configuration),
    /// "publish" (the published output of <see cref="PublishCommand"/>), or a path to an IotGateway.dll or its folder.
    /// </summary>
    public static RepositoryLayout Locate(string configuration, string gateway = "build")
    {
        var root = Repository.FindRoot(Directory.GetCurrentDirectory()) ?? Repository.FindRoot(AppContext.BaseDirectory)
            ?? throw new BenchFailure($"Could not find {Repository.SolutionFile} in the working directory or any parent: run the bench from inside the repository.");

        var build = GatewayProcess.BuildOutputDll(root, configuration);
        var output = Path.GetDirectoryName(build)!;
        // The gateway is measured from its build or publish output, as it would be deployed, not through `dotnet run`.
        var (dll, description, fix) = gateway switch
        {
            "build" => (build, $"the {configuration} build output",
                $"`cd {root} && dotnet build -c {configuration} src/IotGateway`"),
            "publish" => (Path.Combine(output, "linux-x64", "publish", "IotGateway.dll"), "the published build (" + PublishCommand + ")",
                $"`cd {root} && {PublishCommand}`"),
            _ when Directory.Exists(gateway) => (Path.Combine(Path.GetFullPath(gateway), "IotGateway.dll"), $"the gateway in {gateway}", "a folder holding IotGateway.dll"),
            _ => (Path.GetFullPath(gateway), $"the gateway {gateway}", "the path of an IotGateway.dll"),
        };
        if (!File.Exists(dll))
        {
            throw new BenchFailure($"The gateway is not there: {dll} is missing. Build it first: {fix}.");
        }

        return new RepositoryLayout(root, dll, configuration, description);
    }
}
