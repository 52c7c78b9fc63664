using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace IotGateway.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL cluster of the test run's own: initdb into a temp folder (as the postgres user when the tests run as
/// root, which initdb refuses), pg_ctl on a free loopback port with its socket in that folder, stopped when the test
/// process exits. Started once per run, on first use; each test takes a database of its own from it.
/// </summary>
public sealed class PostgresCluster
{
    private static readonly Lazy<Task<PostgresCluster>> SharedCluster = new(() => StartAsync(durable: false));

    private readonly string _bin;
    private readonly string? _runAs;

    private PostgresCluster(string bin, string? runAs, string directory, int port)
    {
        _bin = bin;
        _runAs = runAs;
        Directory = directory;
        Port = port;
    }

    public string Directory { get; }

    public int Port { get; }

    public string DataDirectory => Path.Combine(Directory, "data");

    public static string? BinDirectory { get; } = FindBinDirectory();

    public static bool IsInstalled => BinDirectory is not null;

    public static string NotInstalledMessage =>
        "PostgreSQL is not installed: no initdb in PG_BIN, /usr/lib/postgresql/*/bin or on PATH. Install it (apt-get install postgresql) "
        + "to run the tests against PostgreSQL too.";

    /// <summary>The cluster shared by every test of this run.</summary>
    public static Task<PostgresCluster> SharedAsync() => SharedCluster.Value;

    /// <summary>Skips the test without PostgreSQL, except under CI=true, where its absence is a failure.</summary>
    public static void SkipIfUnavailable()
    {
        if (IsInstalled)
        {
            return;
        }

        if (MosquittoBroker.IsCi)
        {
            throw new InvalidOperationException("CI=true, so PostgreSQL is required. " + NotInstalledMessage);
        }

        Skip.If(true, NotInstalledMessage);
    }

    /// <summary>A fresh, empty database on the shared cluster; returns its Npgsql connection string.</summary>
    public static async Task<string> CreateDatabaseAsync()
    {
        SkipIfUnavailable();
        var cluster = await SharedAsync();
        return await cluster.CreateDatabaseAsync($"test_{Guid.NewGuid():N}");
    }

    public string ConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Database = database,
        Username = "postgres",
    }.ToString();

    public async Task<string> CreateDatabaseAsync(string name)
    {
        await using var connection = new NpgsqlConnection(ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'", connection);
        await create.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    /// <summary>
    /// initdb and pg_ctl start. Not durable (fsync off) for tests; durable for benchmarks, where the commit cost is
    /// what is measured.
    /// </summary>
    public static async Task<PostgresCluster> StartAsync(bool durable)
    {
        var bin = BinDirectory ?? throw new InvalidOperationException(NotInstalledMessage);
        var runAs = Environment.UserName == "root" ? "postgres" : null;
        var directory = System.IO.Directory.CreateTempSubdirectory("iotgw-pg-").FullName;
        if (runAs is not null)
        {
            await RunAsync("chown", ["-R", runAs, directory]);
        }

        var initdb = await RunAsAsync(runAs, Path.Combine(bin, "initdb"),
            ["-D", Path.Combine(directory, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        if (initdb.ExitCode != 0)
        {
            throw new InvalidOperationException($"initdb failed ({initdb.ExitCode}): {initdb.Output}");
        }

        for (var attempt = 1; ; attempt++)
        {
            var port = MosquittoBroker.FindFreePort();
            var cluster = new PostgresCluster(bin, runAs, directory, port);
            var options = string.Join(' ',
                $"-p {port.ToString(CultureInfo.InvariantCulture)}", $"-k {directory}", "-c listen_addresses=127.0.0.1", "-c max_connections=400",
                durable ? "" : "-c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            var start = await RunAsAsync(runAs, Path.Combine(bin, "pg_ctl"),
                ["-D", cluster.DataDirectory, "-l", Path.Combine(directory, "postgres.log"), "-o", options, "-w", "-t", "60", "start"]);
            if (start.ExitCode == 0)
            {
                AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Stop();
                return cluster;
            }

            var log = File.Exists(Path.Combine(directory, "postgres.log")) ? await File.ReadAllTextAsync(Path.Combine(directory, "postgres.log")) : "";
            if (attempt >= 5 || !log.Contains("could not bind", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"pg_ctl start failed ({start.ExitCode}): {start.Output}\n{log}");
            }
        }
    }

    /// <summary>Fast shutdown and the folder removed; what the run left behind goes with it.</summary>
    public void Stop()
    {
        using var stop = Process.Start(StartInfo(_runAs, Path.Combine(_bin, "pg_ctl"), ["-D", DataDirectory, "-m", "immediate", "-w", "stop"]))!;
        stop.WaitForExit(30_000);
        // rm rather than Directory.Delete: it finishes within the few moments a process exit allows.
        using var remove = Process.Start("rm", ["-rf", Directory]);
        remove.WaitForExit(10_000);
    }

    private static Task<(int ExitCode, string Output)> RunAsAsync(string? user, string tool, IEnumerable<string> arguments) =>
        user is null ? RunAsync(tool, arguments) : RunAsync("runuser", ["-u", user, "--", tool, .. arguments]);

    private static Task<(int ExitCode, string Output)> RunAsync(string tool, IEnumerable<string> arguments) => ExternalTool.RunAsync(tool, arguments);

    private static ProcessStartInfo StartInfo(string? user, string tool, string[] arguments)
    {
        var info = user is null ? new ProcessStartInfo(tool) : new ProcessStartInfo("runuser") { ArgumentList = { "-u", user, "--", tool } };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.UseShellExecute = false;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        return info;
    }

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
}
