using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace IotGateway.Data;

// Notices the database file being deleted or replaced under the running gateway (a restore gone wrong, a cleanup
// script): SQLite would go on writing into the unlinked file, and ingest would acknowledge messages into a file
// nobody will ever read. A connection opened at start keeps the original file open; SQLite's own check
// (SQLITE_FCNTL_HAS_MOVED: is the file at this path still the one this connection has open, by inode) answers.
// Once moved, always moved: readiness fails and ingest acknowledges nothing until the gateway is restarted.
// Null connection string: no file to watch (PostgreSQL), never moved.
public sealed class DatabaseFile(string? connectionString) : IDisposable
{
    private const int SqliteFcntlHasMoved = 20;

    private readonly Lock _lock = new();
    private SqliteConnection? _connection;
    private bool _moved;

    // After the database is migrated: the file that exists now is the gateway's.
    public void Watch()
    {
        lock (_lock)
        {
            if (_connection is not null || connectionString is null)
            {
                return;
            }

            var connection = new SqliteConnection(new SqliteConnectionStringBuilder(connectionString) { Pooling = false, Mode = SqliteOpenMode.ReadOnly }.ToString());
            connection.Open();
            using var read = connection.CreateCommand();
            read.CommandText = "SELECT count(*) FROM sqlite_master";
            read.ExecuteScalar();
            _connection = connection;
        }
    }

    public bool HasMoved()
    {
        lock (_lock)
        {
            if (_moved || _connection?.Handle is not { } handle)
            {
                return _moved;
            }

            var moved = 0;
            // Only the unix VFS implements the check; elsewhere (SQLITE_NOTFOUND) an open file cannot be deleted anyway.
            _moved = FileControl(handle.DangerousGetHandle(), "main"u8.ToArray(), SqliteFcntlHasMoved, ref moved) == 0 && moved != 0;
            return _moved;
        }
    }

    public void ThrowIfMoved()
    {
        if (HasMoved())
        {
            throw new DatabaseFileMovedException(
                "the database file was deleted or replaced while the gateway had it open; nothing is acknowledged into it: restart the gateway");
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _connection?.Dispose();
            _connection = null;
        }
    }

    // SQLite's public C API, in the same native library Microsoft.Data.Sqlite runs on (SQLitePCLRaw does not wrap it).
    [DllImport("e_sqlite3", EntryPoint = "sqlite3_file_control")]
    private static extern int FileControl(IntPtr db, byte[] name, int op, ref int value);
}
