using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace IotGateway.Tests.Docs;

// The README's commands, run as a reader would paste them, so that the README cannot drift from the product. A shell
// block is either marked <!-- doc-test --> (run here, in order, in one bash against a gateway started from the build
// output in an empty folder, as "Run it" starts it) or <!-- doc-test: excluded: <reason> --> (it cannot run here:
// Docker, a PostgreSQL deployment, a long-running simulator). `# → …` lines in a run block are what it must print.
public sealed class ReadmeDocTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private static readonly string[] Tools = ["bash", "curl", "jq", "sqlite3", "mosquitto_pub", "mosquitto_sub"];

    private static IReadOnlyList<ReadmeBlock> Blocks(out IReadOnlyList<int> orphanMarkers) =>
        ReadmeBlocks.Parse(File.ReadAllText(Path.Combine(Repository.Root, "README.md")), out orphanMarkers);

    [Fact]
    public void EveryShellBlockIsRunOrExcludedWithAReason()
    {
        var blocks = Blocks(out var orphans);

        Assert.True(orphans.Count == 0, $"README.md lines {string.Join(", ", orphans)}: a doc-test marker must be the line right before a shell block.");
        var unlabelled = blocks.Where(b => b.Language.Length == 0).Select(b => b.Line).ToList();
        Assert.True(unlabelled.Count == 0, $"README.md lines {string.Join(", ", unlabelled)}: every fenced block names its language (`text` for output), so a shell block cannot pass unseen.");
        var unmarked = blocks.Where(b => b.IsShell && b.Marker == ReadmeBlockMarker.None).Select(b => b.Line).ToList();
        Assert.True(unmarked.Count == 0, $"README.md lines {string.Join(", ", unmarked)}: a shell block without <!-- doc-test --> or <!-- doc-test: excluded: <reason> --> before it.");
        var markedNotShell = blocks.Where(b => !b.IsShell && b.Marker != ReadmeBlockMarker.None).Select(b => b.Line).ToList();
        Assert.True(markedNotShell.Count == 0, $"README.md lines {string.Join(", ", markedNotShell)}: a doc-test marker on a block that is not shell.");
        var noReason = blocks.Where(b => b.Marker == ReadmeBlockMarker.Excluded && (b.ExclusionReason?.Length ?? 0) < 10).Select(b => b.Line).ToList();
        Assert.True(noReason.Count == 0, $"README.md lines {string.Join(", ", noReason)}: an excluded block says why it cannot run in CI.");

        // Not a test that passes on an empty README: the user's path (try it, operate, back up) is run.
        var run = blocks.Where(b => b.Marker == ReadmeBlockMarker.Run).ToList();
        Assert.True(run.Count >= 5, $"Only {run.Count} README blocks are run by the doc test.");
        Assert.True(run.Sum(b => b.ExpectedOutput.Count()) >= 10, "The run blocks state what they print (# → lines).");
        foreach (var block in blocks.Where(b => b.Marker == ReadmeBlockMarker.Excluded))
        {
            output.WriteLine($"excluded, line {block.Line}: {block.ExclusionReason}");
        }
    }

    [Fact]
    public void WhatABlockPrintsIsCheckedInOrderWithEllipsesAsWildcards()
    {
        const string printed = "Location: http://127.0.0.1:5/api/commands/0193\n{\"status\":\"Completed\",\"result\":\"PONG\"}\r\n";

        Assert.Null(ReadmeBlocks.FirstMissingExpectation(["Location: http://127.0.0.1:5/api/commands/…", "{\"status\":\"Completed\",…}"], printed));
        Assert.Equal("{\"status\":\"Failed\",…}", ReadmeBlocks.FirstMissingExpectation(["{\"status\":\"Failed\",…}"], printed));
        Assert.Equal("Location: …", ReadmeBlocks.FirstMissingExpectation(["{\"status\":…}", "Location: …"], printed));
        Assert.Empty(ReadmeBlocks.DocumentedPortsLeft(ReadmeBlocks.Substitute("curl localhost:5000/x\nmosquitto_pub -p 1883 -t t", 41000, 41001)));
        Assert.Single(ReadmeBlocks.DocumentedPortsLeft("mosquitto_pub -h 127.0.0.1 --port 1883 -t t"));
    }

    [SkippableFact]
    public async Task TheReadmesCommandsWorkAgainstARealGateway()
    {
        var missing = Tools.Where(t => !OnPath(t)).ToList();
        Skip.If(missing.Count > 0 && !Requires.IsCi, $"Needs {string.Join(", ", missing)} (apt-get install curl jq sqlite3 mosquitto-clients; CI=true makes this a failure).");
        Assert.True(missing.Count == 0, $"CI=true: {string.Join(", ", missing)} must be installed (.ci/run installs them).");

        var blocks = Blocks(out _).Where(b => b.Marker == ReadmeBlockMarker.Run).ToList();
        using var folder = new TempDirectory("iotgw-readme-");
        var httpPort = FreePort.OnLoopback();
        var mqttPort = FreePort.OnLoopback();
        await using var gateway = GatewayProcess.Start(BuiltGateway.Dll, folder.Path, new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = string.Create(CultureInfo.InvariantCulture, $"http://127.0.0.1:{httpPort}"),
            ["Mqtt__Embedded__Port"] = mqttPort.ToString(CultureInfo.InvariantCulture),
        });
        await gateway.WaitUntilReadyAsync(Timeout);

        var script = ReadmeBlocks.Script(blocks, httpPort, mqttPort);
        var scriptFile = Path.Combine(folder.Path, "readme.sh");
        await File.WriteAllTextAsync(scriptFile, script);
        var left = ReadmeBlocks.DocumentedPortsLeft(script).ToList();
        Assert.True(left.Count == 0, $"These README lines use the documented ports in a form the doc test does not replace: {string.Join(" | ", left)}");

        var (exitCode, stdout, stderr) = await RunAsync(scriptFile, folder.Path);
        output.WriteLine(stdout);
        output.WriteLine(stderr);
        Assert.True(exitCode == 0, $"The README's commands failed (exit {exitCode}); the last commands ran:{Environment.NewLine}{Tail(stderr, 25)}{Environment.NewLine}Gateway:{Environment.NewLine}{string.Join(Environment.NewLine, gateway.Output.TakeLast(15))}");

        var expected = blocks.SelectMany(b => b.ExpectedOutput.Select(e => ReadmeBlocks.Substitute(e, httpPort, mqttPort))).ToList();
        var missingLine = ReadmeBlocks.FirstMissingExpectation(expected, stdout);
        Assert.True(missingLine is null, $"The README says a command prints{Environment.NewLine}  {missingLine}{Environment.NewLine}but (in that order) it printed:{Environment.NewLine}{stdout}");
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string scriptFile, string workingDirectory)
    {
        var start = new ProcessStartInfo("bash")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(scriptFile);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("bash did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, await stdout, await stderr + $"{Environment.NewLine}(stopped after {Timeout.TotalSeconds} s: a README command waited for something that never came)");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    private static string Tail(string text, int lines) => string.Join(Environment.NewLine, text.Split('\n').TakeLast(lines));

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(directory => File.Exists(Path.Combine(directory, tool)));
}
