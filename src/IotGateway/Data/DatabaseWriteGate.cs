using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace IotGateway.Data;

// SQLite has one writer at a time. A writer that finds the database locked sleeps in SQLite's busy handler
// (1, 2, 5, 10… ms) and BEGIN DEFERRED transactions can fail outright on upgrade; under load that turned
// millisecond commands into tens of milliseconds. Every write in the gateway takes this gate first, so
// writers queue in memory and start the moment the previous commit ends. Readers never take it (WAL).
//
// The gate also owns the writers' connection: one SQLite connection kept open, with each statement prepared
// once and reused. Opening a pooled connection and compiling the SQL again at every write was about a tenth
// of the gateway's CPU under the command round-trip benchmark. Only the holder of the gate touches it.
// On PostgreSQL there is no such connection (null): the gate then only orders the few writers that still take it.
public sealed class DatabaseWriteGate(string? connectionString) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<string, SqliteCommand> _statements = new(StringComparer.Ordinal);
    private readonly Dictionary<string, sqlite3_stmt> _nativeStatements = new(StringComparer.Ordinal);
    private SqliteConnection? _connection;

    public async ValueTask<Releaser> EnterAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        return new Releaser(_gate);
    }

    // Gate held. Opened on first use, which is after DatabaseStartup has migrated the file.
    internal SqliteConnection Connection()
    {
        if (_connection is null)
        {
            // Not pooled: it lives as long as the gateway, and after a failure it is really closed (see Reset).
            // ReadWrite, not create: a database file deleted under the gateway must not come back empty (see DatabaseFile).
            var connection = new SqliteConnection(
                new SqliteConnectionStringBuilder(connectionString ?? throw new InvalidOperationException("The database is PostgreSQL: there is no SQLite writer connection."))
                {
                    Pooling = false,
                    Mode = SqliteOpenMode.ReadWrite,
                }.ToString());
            try
            {
                connection.Open();
                StorageSetup.ApplyConnectionPragmas(connection);
            }
            catch
            {
                connection.Dispose();
                throw;
            }

            _connection = connection;
        }

        return _connection;
    }

    // Gate held. The statement for this SQL with the named parameters in this order, prepared on first use.
    internal SqliteCommand Statement(string sql, string[] parameterNames)
    {
        if (!_statements.TryGetValue(sql, out var command))
        {
            command = Connection().CreateCommand();
            command.CommandText = sql;
            foreach (var name in parameterNames)
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            command.Prepare();
            _statements[sql] = command;
        }

        return command;
    }

    // Gate held. The statement for this SQL prepared on the writer connection with SQLite's own API (SQLitePCLRaw,
    // which Microsoft.Data.Sqlite runs on), for the one statement run per message: see SqliteIngestStatements.
    internal sqlite3_stmt NativeStatement(string sql)
    {
        if (!_nativeStatements.TryGetValue(sql, out var statement))
        {
            var connection = Connection().Handle;
            var rc = raw.sqlite3_prepare_v2(connection, sql, out statement);
            if (rc != raw.SQLITE_OK)
            {
                statement.Dispose();
                SqliteException.ThrowExceptionForRC(rc, connection);
            }

            _nativeStatements[sql] = statement;
        }

        return statement;
    }

    // Gate held. After a failed write the connection is closed and opened afresh by the next writer: whatever
    // state SQLite left it in (a full disk, an I/O error, a lock held elsewhere) does not carry over.
    internal void Reset()
    {
        foreach (var command in _statements.Values)
        {
            command.Dispose();
        }

        _statements.Clear();
        // Finalized before the connection closes, or SQLite would keep it open for them.
        foreach (var statement in _nativeStatements.Values)
        {
            statement.Dispose();
        }

        _nativeStatements.Clear();
        var connection = _connection;
        _connection = null;
        try
        {
            connection?.Dispose();
        }
        catch (SqliteException)
        {
            // A rollback at close failed; the native connection is released regardless.
        }
    }

    public void Dispose()
    {
        Reset();
        _gate.Dispose();
    }

    public readonly struct Releaser(SemaphoreSlim gate) : IDisposable
    {
        public void Dispose() => gate.Release();
    }
}
