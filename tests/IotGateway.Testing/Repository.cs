namespace IotGateway.Testing;

/// <summary>The checkout: the folder that holds IotGateway.sln.</summary>
public static class Repository
{
    public const string SolutionFile = "IotGateway.sln";

    private static readonly Lazy<string> LazyRoot = new(() => FindRoot(AppContext.BaseDirectory)
        ?? throw new DirectoryNotFoundException($"No folder above {AppContext.BaseDirectory} contains {SolutionFile}."));

    /// <summary>The checkout the running binaries were built in (found above them).</summary>
    public static string Root => LazyRoot.Value;

    /// <summary>The nearest folder at or above <paramref name="start"/> that holds IotGateway.sln, or null.</summary>
    public static string? FindRoot(string start)
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
