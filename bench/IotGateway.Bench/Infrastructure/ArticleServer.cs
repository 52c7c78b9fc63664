using IotGateway.Protocol;

namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// The article's own Node.js server (mqtt/iot-server.js of domagoj-nadramija/mqtt-two-way), unchanged, as the
/// reference a user compares the gateway with: it subscribes with a persistent session and logs every message
/// (it stores nothing). A preloaded script counts its messages and ends the process after the N-th, so its drain
/// is timed from process start to exit, like mosquitto_sub's.
/// </summary>
public sealed class ArticleServer
{
    // Where this machine keeps the article's repository (a bare mirror); elsewhere it is cloned from GitHub.
    private const string MirrorGitDirectory = "/work/.mirror/domagoj-nadramija+mqtt-two-way/repo";
    private const string CloneUrl = "https://github.com/domagoj-nadramija/mqtt-two-way.git";
    private const string CounterScript = "bench-exit-after.js";

    private ArticleServer(string directory) => Directory = directory;

    /// <summary>The checkout with its node_modules.</summary>
    public string Directory { get; }

    /// <summary>
    /// A checkout with its dependencies installed (npm ci, from its package-lock.json), kept in the user's cache
    /// folder so later runs start at once; null with the reason when node, npm, the repository or the npm registry
    /// is not available.
    /// </summary>
    public static async Task<(ArticleServer? Server, string? Problem)> PrepareAsync(CancellationToken cancellationToken)
    {
        if (FindOnPath("node") is null || FindOnPath("npm") is null)
        {
            return (null, "node and npm are not installed");
        }

        var cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "iotgw-bench", "mqtt-two-way");
        if (!File.Exists(Path.Combine(cache, "node_modules", "mqtt", "package.json")))
        {
            if (System.IO.Directory.Exists(cache))
            {
                System.IO.Directory.Delete(cache, recursive: true);
            }

            System.IO.Directory.CreateDirectory(cache);
            var fetched = System.IO.Directory.Exists(MirrorGitDirectory)
                ? await RunAsync("/bin/sh", ["-c", $"git --git-dir='{MirrorGitDirectory}' archive HEAD | tar -x -C '{cache}'"], cache, cancellationToken)
                : await RunAsync("git", ["clone", "--depth", "1", CloneUrl, cache], Path.GetTempPath(), cancellationToken);
            if (fetched is not null)
            {
                return (null, $"the article's repository could not be fetched: {fetched}");
            }

            if (await RunAsync("npm", ["ci", "--no-audit", "--no-fund"], cache, cancellationToken) is { } npm)
            {
                return (null, $"npm ci failed (is the npm registry reachable?): {npm}");
            }
        }

        await File.WriteAllTextAsync(Path.Combine(cache, CounterScript), """
            // Preloaded by the gateway's bench: ends the article's server after BENCH_EXIT_AFTER messages, once its own
            // handler has run for the last one, so the bench can time its drain from process start to exit.
            const mqtt = require("mqtt");
            const connect = mqtt.connect;
            const target = Number(process.env.BENCH_EXIT_AFTER);
            mqtt.connect = function (...args) {
              const client = connect.apply(this, args);
              let received = 0;
              client.on("message", () => {
                if (++received === target) setImmediate(() => process.exit(0));
              });
              return client;
            };
            """, cancellationToken);
        return (new ArticleServer(cache), null);
    }

    /// <summary>
    /// Runs the server on the given session until it has received <paramref name="readings"/> messages; its log
    /// goes to /dev/null (as mosquitto_sub's output does). Returns process start → exit, and its CPU time.
    /// </summary>
    public async Task<(TimeSpan Time, TimeSpan? Cpu)> DrainAsync(MosquittoBroker broker, string clientId, int readings, CancellationToken cancellationToken)
    {
        // The shell stays to report the server's CPU time (`times`) after it exits.
        var command = $"node -r ./{CounterScript} mqtt/iot-server.js > /dev/null; status=$?; times; exit $status";
        await using var server = ChildProcess.Start("article-server", "/bin/sh", ["-c", command], Directory, new Dictionary<string, string?>
        {
            ["BROKER"] = broker.Url,
            ["SERVER_ID"] = clientId,
            ["DATA_TOPIC"] = TopicRoots.DefaultData,
            ["CMD_REQ_TOPIC"] = TopicRoots.DefaultCommandRequest,
            ["CMD_RESP_TOPIC"] = TopicRoots.DefaultCommandResponse,
            ["REGISTER_TOPIC"] = TopicRoots.DefaultRegister,
            ["NODE_ENV"] = "production",
            ["BENCH_EXIT_AFTER"] = readings.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var timeout = TimeSpan.FromSeconds(60 + readings / 2000);
        if (!await server.WaitForExitAsync(timeout, cancellationToken))
        {
            throw new BenchFailure($"The article's server did not receive {Report.Count(readings)} messages within {timeout.TotalSeconds} s. Its output:\n{server.OutputTail()}");
        }

        var time = server.SinceStart.Elapsed;
        if (server.ExitCode != 0)
        {
            throw new BenchFailure($"The article's server exited with code {server.ExitCode}. Its output:\n{server.OutputTail()}");
        }

        return (time, ShellTimes.ChildrenCpuTime(server.OutputTail()));
    }

    private static async Task<string?> RunAsync(string fileName, string[] arguments, string workingDirectory, CancellationToken cancellationToken)
    {
        await using var process = ChildProcess.Start(Path.GetFileName(fileName), fileName, arguments, workingDirectory);
        if (!await process.WaitForExitAsync(TimeSpan.FromMinutes(3), cancellationToken))
        {
            return $"{fileName} did not finish in 3 minutes";
        }

        return process.ExitCode == 0 ? null : $"exit code {process.ExitCode}: {process.OutputTail()}";
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
