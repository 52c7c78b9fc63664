using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;

namespace IotGateway.Testing;

/// <summary>
/// A PostgreSQL cluster of its own: initdb into a temp folder (as the postgres user when run as root, which initdb
/// refuses), pg_ctl on a free loopback port with its socket in that folder. Dispose stops it and removes the folder.
/// </summary>
/// <remarks>
/// pg_ctl leaves the server running on its own, so a process that ends without disposing would leave it behind: the
/// test runner kills the test host moments after the last result, too soon for anything run at the end to finish.
/// So a watcher of its own session (<c>tail --pid</c>) waits for the owner to end, however it ends, and then stops
/// the server and removes the folder. Should the watcher not get to it (the machine stopped), the folder records its
/// owner (process id and start time) and the next cluster started removes those whose owner is gone.
/// </remarks>
public sealed partial class PostgresCluster : IAsyncDisposable
{
    public const string FolderPrefix = "iotgw-pg-";

    private const string OwnerFile = "owner";
    private const int SigQuit = 3;

    // A folder of an older fixture (no owner file) is only removed once it has been left alone this long and no
    // server runs in it: never one that is still being set up.
    private static readonly TimeSpan OwnerlessAge = TimeSpan.FromHours(1);

    private static readonly ConcurrentDictionary<PostgresCluster, byte> Live = new();

    private readonly string _bin;
    private readonly string? _runAs;
    private ChildProcess? _watcher;
    private int _stopped;

    static PostgresCluster() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        foreach (var cluster in Live.Keys)
        {
            cluster.StopNow();
        }
    };

    private PostgresCluster(string bin, string? runAs, string directory)
    {
        _bin = bin;
        _runAs = runAs;
        Directory = directory;
    }

    public string Directory { get; }

    public int Port { get; private set; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public static string? BinDirectory { get; } = FindBinDirectory();

    public static bool IsInstalled => BinDirectory is not null;

    public static string NotInstalledMessage =>
        "PostgreSQL is not installed: no initdb in PG_BIN, /usr/lib/postgresql/*/bin or on PATH. Install it (apt-get install postgresql) "
        + "to run against PostgreSQL too.";

    public string ConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Database = database,
        Username = "postgres",
    }.ToString();

    /// <summary>An empty database in binary (C) collation, as SQLite compares text; returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string name, CancellationToken ct = default)
    {
        await using var connection = new NpgsqlConnection(ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'", connection);
        await create.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        return ConnectionString(name);
    }

    /// <summary>
    /// initdb and pg_ctl start, after removing the clusters of processes that are gone. Not durable (fsync off) for
    /// tests; durable for benchmarks, where the commit cost is what is measured.
    /// </summary>
    public static async Task<PostgresCluster> StartAsync(bool durable, CancellationToken ct = default)
    {
        var bin = BinDirectory ?? throw new InvalidOperationException(NotInstalledMessage);
        var runAs = Environment.UserName == "root" ? "postgres" : null;
        await RemoveLeftoversAsync(ct).ConfigureAwait(false);

        var directory = System.IO.Directory.CreateTempSubdirectory(FolderPrefix).FullName;
        await File.WriteAllTextAsync(Path.Combine(directory, OwnerFile), OwnerIdentity.Current.ToString(), ct).ConfigureAwait(false);
        var cluster = new PostgresCluster(bin, runAs, directory);
        Live.TryAdd(cluster, 0);
        try
        {
            if (runAs is not null)
            {
                await RunAsync(null, "chown", ["-R", runAs, directory], ct).ConfigureAwait(false);
            }

            cluster._watcher = StartWatcher(runAs, bin, directory);

            var initdb = await RunAsync(runAs, Path.Combine(bin, "initdb"),
                ["-D", cluster.DataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"], ct).ConfigureAwait(false);
            if (initdb.ExitCode != 0)
            {
                throw new InvalidOperationException($"initdb failed ({initdb.ExitCode}): {initdb.Output}");
            }

            for (var attempt = 1; ; attempt++)
            {
                cluster.Port = FreePort.OnLoopback();
                var options = string.Join(' ',
                    $"-p {cluster.Port.ToString(CultureInfo.InvariantCulture)}", $"-k {directory}", "-c listen_addresses=127.0.0.1", "-c max_connections=400",
                    durable ? "" : "-c fsync=off -c synchronous_commit=off -c full_page_writes=off");
                var log = Path.Combine(directory, "postgres.log");
                var start = await RunAsync(runAs, Path.Combine(bin, "pg_ctl"),
                    ["-D", cluster.DataDirectory, "-l", log, "-o", options, "-w", "-t", "60", "start"], ct).ConfigureAwait(false);
                if (start.ExitCode == 0)
                {
                    return cluster;
                }

                var text = File.Exists(log) ? await File.ReadAllTextAsync(log, ct).ConfigureAwait(false) : "";
                if (attempt >= 5 || !text.Contains("could not bind", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"pg_ctl start failed ({start.ExitCode}): {start.Output}\n{text}");
                }
            }
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Immediate shutdown (the data is thrown away) and the folder removed. Safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        Live.TryRemove(this, out _);
        await StopAndRemoveAsync(_runAs, _bin, Directory).ConfigureAwait(false);
        if (_watcher is not null)
        {
            await _watcher.DisposeAsync().ConfigureAwait(false);
        }
    }

    // In a session of its own (setsid), so that neither the owner's end nor a Ctrl+C to the owner's terminal ends it.
    private static ChildProcess StartWatcher(string? runAs, string bin, string directory)
    {
        const string script = """
            tail --pid="$1" -f /dev/null
            if [ -f "$2/data/postmaster.pid" ]; then "$3" -D "$2/data" -m immediate -w stop > /dev/null 2>&1; fi
            rm -rf "$2"
            """;
        string[] shell = ["sh", "-c", script, "postgres-cluster-watcher", Environment.ProcessId.ToString(CultureInfo.InvariantCulture), directory,
            Path.Combine(bin, "pg_ctl")];
        string[] command = runAs is null ? shell : ["runuser", "-u", runAs, "--", .. shell];
        return ChildProcess.Start("postgres-cluster-watcher", "setsid", command, Path.GetTempPath(), captureOutput: false, killAtExit: false);
    }

    /// <summary>
    /// Stops and removes the clusters under the temp folder whose owner process has ended: those of runs that were
    /// killed or cut short. Clusters of live processes (another run, another user's) are left alone. Returns how many
    /// folders it removed.
    /// </summary>
    public static async Task<int> RemoveLeftoversAsync(CancellationToken ct = default)
    {
        if (BinDirectory is not { } bin)
        {
            return 0;
        }

        var runAs = Environment.UserName == "root" ? "postgres" : null;
        var removed = 0;
        foreach (var directory in System.IO.Directory.GetDirectories(Path.GetTempPath(), FolderPrefix + "*"))
        {
            if (IsLeftover(directory))
            {
                await StopAndRemoveAsync(runAs, bin, directory, ct).ConfigureAwait(false);
                removed += System.IO.Directory.Exists(directory) ? 0 : 1;
            }
        }

        return removed;
    }

    private static bool IsLeftover(string directory)
    {
        try
        {
            var ownerPath = Path.Combine(directory, OwnerFile);
            if (File.Exists(ownerPath))
            {
                return OwnerIdentity.TryParse(File.ReadAllText(ownerPath), out var owner) && !owner.IsAlive();
            }

            return DateTime.UtcNow - System.IO.Directory.GetLastWriteTimeUtc(directory) > OwnerlessAge
                && !ServerRunsIn(Path.Combine(directory, "data"));
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            // Another user's cluster.
            return false;
        }
    }

    private static async Task StopAndRemoveAsync(string? runAs, string bin, string directory, CancellationToken ct = default)
    {
        var data = Path.Combine(directory, "data");
        if (File.Exists(Path.Combine(data, "postmaster.pid")))
        {
            await RunAsync(runAs, Path.Combine(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], ct).ConfigureAwait(false);
        }

        // rm rather than Directory.Delete: the folder is the postgres user's, and rm finishes within moments.
        await RunAsync(null, "rm", ["-rf", directory], ct).ConfigureAwait(false);
    }

    // At process exit there are moments only: a signal to the server (SIGQUIT is pg_ctl's immediate mode) and the
    // folder's removal, no waiting. What this does not finish, the next cluster's start removes.
    private void StopNow()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1)
        {
            return;
        }

        if (ServerProcessId(DataDirectory) is { } pid)
        {
            _ = SendSignal(pid, SigQuit);
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static bool ServerRunsIn(string dataDirectory) =>
        ServerProcessId(dataDirectory) is { } pid && File.Exists($"/proc/{pid}/comm")
        && File.ReadAllText($"/proc/{pid}/comm").Trim() is "postgres" or "postmaster";

    // The first line of postmaster.pid, while the server runs (it removes the file when it stops cleanly).
    private static int? ServerProcessId(string dataDirectory)
    {
        try
        {
            var path = Path.Combine(dataDirectory, "postmaster.pid");
            return File.Exists(path) && int.TryParse(File.ReadLines(path).FirstOrDefault(), CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static Task<(int ExitCode, string Output)> RunAsync(string? user, string tool, IEnumerable<string> arguments, CancellationToken ct) =>
        user is null
            ? ExternalTool.RunAsync(tool, arguments, ct, TimeSpan.FromSeconds(90))
            : ExternalTool.RunAsync("runuser", ["-u", user, "--", tool, .. arguments], ct, TimeSpan.FromSeconds(90));

    private static string? FindBinDirectory()
    {
        if (Environment.GetEnvironmentVariable("PG_BIN") is { Length: > 0 } configured)
        {
            return File.Exists(Path.Combine(configured, "initdb")) ? configured : null;
        }

        if (System.IO.Directory.Exists("/usr/lib/postgresql"))
        {
            var newest = System.IO.Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0)
                .FirstOrDefault();
            if (newest is not null)
            {
                return newest;
            }
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")));
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
