using System.Diagnostics;
using Npgsql;

namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// A PostgreSQL cluster of the bench's own (Debian's postgresql package: its binaries only): initdb into a temp folder
/// as the postgres user when run as root, pg_ctl on a free loopback port, durable (fsync and synchronous commit on, as
/// deployed: the commit is part of what is measured). Stopped and deleted on dispose.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string? _runAs;
    private readonly string _directory;

    private PostgresServer(string bin, string? runAs, string directory, int port)
    {
        _bin = bin;
        _runAs = runAs;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    public static async Task<PostgresServer> StartAsync(CancellationToken cancellationToken)
    {
        var bin = FindBin() ?? throw new BenchFailure("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql.");
        var runAs = Environment.UserName == "root" ? "postgres" : null;
        var directory = Directory.CreateTempSubdirectory("iotgw-bench-pg-").FullName;
        if (runAs is not null)
        {
            await RunAsync("chown", ["-R", runAs, directory], cancellationToken);
        }

        await RunAsync(runAs, Path.Combine(bin, "initdb"), ["-D", Path.Combine(directory, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"],
            cancellationToken);
        var port = FreePort.OnLoopback();
        var server = new PostgresServer(bin, runAs, directory, port);
        await RunAsync(runAs, Path.Combine(bin, "pg_ctl"), ["-D", Path.Combine(directory, "data"), "-l", Path.Combine(directory, "postgres.log"),
            "-o", $"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=200", "-w", "-t", "60", "start"], cancellationToken);
        return server;
    }

    public string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Database = database, Username = "postgres" }.ToString();

    public async Task<string> CreateDatabaseAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        await using var create = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await create.ExecuteNonQueryAsync(cancellationToken);
        return ConnectionString(name);
    }

    public async ValueTask DisposeAsync()
    {
        await RunAsync(_runAs, Path.Combine(_bin, "pg_ctl"), ["-D", Path.Combine(_directory, "data"), "-m", "fast", "-w", "stop"], CancellationToken.None);
        Directory.Delete(_directory, recursive: true);
    }

    private static string? FindBin() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => d).FirstOrDefault()
            : null;

    private static Task RunAsync(string? user, string tool, string[] arguments, CancellationToken cancellationToken) =>
        user is null ? RunAsync(tool, arguments, cancellationToken) : RunAsync("runuser", ["-u", user, "--", tool, .. arguments], cancellationToken);

    private static async Task RunAsync(string tool, string[] arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new BenchFailure($"{Path.GetFileName(tool)} {string.Join(' ', arguments)} failed ({process.ExitCode}): {await output}{await errors}");
        }
    }
}
