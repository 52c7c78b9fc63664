using System.Diagnostics;
using System.Text;

namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// A Mosquitto of its own for one benchmark: a generated config on a free loopback port, in-memory sessions,
/// no limits on queued or in-flight messages or connections (so the broker is never what drops or throttles).
/// </summary>
public sealed class MosquittoBroker : IAsyncDisposable
{
    public const string Host = "127.0.0.1";

    private static readonly string[] BrokerPaths = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto"];

    private readonly TempDirectory _directory;
    private readonly ChildProcess _process;

    private MosquittoBroker(TempDirectory directory, ChildProcess process, int port)
    {
        _directory = directory;
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string Url => $"mqtt://{Host}:{Port}";

    public int ProcessId => _process.Id;

    public static async Task<MosquittoBroker> StartAsync(CancellationToken cancellationToken)
    {
        var executable = BrokerPaths.FirstOrDefault(File.Exists) ?? FindOnPath("mosquitto")
            ?? throw new BenchFailure("Mosquitto is not installed (no mosquitto in /usr/sbin or on PATH): apt-get install mosquitto mosquitto-clients.");
        var directory = TempDirectory.Create("iotgw-bench-mosquitto-");
        try
        {
            // The free port may be taken between the probe and mosquitto's bind: then it exits and we try another.
            for (var attempt = 1; attempt <= 5; attempt++)
            {
                var port = FreePort.OnLoopback();
                var config = directory.File("mosquitto.conf");
                await File.WriteAllTextAsync(config, BuildConfig(port, directory.File("mosquitto.log")), cancellationToken);
                var process = ChildProcess.Start("mosquitto", executable, ["-c", config], directory.Path);
                if (await WaitUntilListeningAsync(process, port, cancellationToken))
                {
                    return new MosquittoBroker(directory, process, port);
                }

                await process.DisposeAsync();
            }

            var log = File.Exists(directory.File("mosquitto.log")) ? await File.ReadAllTextAsync(directory.File("mosquitto.log"), cancellationToken) : "";
            throw new BenchFailure($"Mosquitto did not start listening on a free loopback port after 5 attempts. Its log:\n{log}");
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    /// <summary>Command-line tool next to the broker (mosquitto_sub, mosquitto_pub).</summary>
    public static string ClientTool(string name) =>
        FindOnPath(name) ?? throw new BenchFailure($"{name} is not installed: apt-get install mosquitto-clients.");

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        _directory.Dispose();
    }

    private static string BuildConfig(int port, string logPath)
    {
        var config = new StringBuilder();
        // Started as root, mosquitto would switch to the 'mosquitto' user, which cannot read our temp directory.
        config.Append("user root\n");
        config.Append("per_listener_settings false\n");
        config.Append("allow_anonymous true\n");
        config.Append("set_tcp_nodelay true\n");
        // Sessions of offline clients hold the whole backlog; in-flight and connections are not what we measure.
        config.Append("max_queued_messages 1000000\n");
        config.Append("max_inflight_messages 0\n");
        config.Append("max_connections -1\n");
        config.Append("persistence false\n");
        // Thousands of connects would otherwise fill the log; errors and warnings are what we need on failure.
        config.Append("connection_messages false\n");
        config.Append($"log_dest file {logPath}\n");
        config.Append("log_type error\nlog_type warning\n");
        config.Append($"listener {port} {Host}\n");
        return config.ToString();
    }

    private static async Task<bool> WaitUntilListeningAsync(ChildProcess process, int port, CancellationToken cancellationToken)
    {
        var elapsed = Stopwatch.StartNew();
        while (elapsed.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (process.HasExited)
            {
                return false;
            }

            if (await FreePort.AcceptsConnectionsAsync(port, cancellationToken))
            {
                return true;
            }

            await Task.Delay(20, cancellationToken);
        }

        return false;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(directory => Path.Combine(directory, name))
        .FirstOrDefault(File.Exists);
}
