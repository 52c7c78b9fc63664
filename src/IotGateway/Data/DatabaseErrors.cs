using Microsoft.Data.Sqlite;
using Npgsql;
using SQLitePCL;

namespace IotGateway.Data;

// Whether a failed write is the database's trouble (it passes: a lock, a full disk, an I/O error, a file that
// is gone, a PostgreSQL server that is unreachable or restarting) or the data's (this message can never be stored: a
// constraint, a value out of range, text PostgreSQL refuses). Ingest retries the first with everything
// unacknowledged, and splits a batch over the second to find the one message to reject. Decided by result code or
// SQLSTATE, never by message text.
public static class DatabaseErrors
{
    private static readonly HashSet<int> Transient =
    [
        raw.SQLITE_BUSY, raw.SQLITE_LOCKED, raw.SQLITE_NOMEM, raw.SQLITE_READONLY, raw.SQLITE_INTERRUPT, raw.SQLITE_IOERR,
        raw.SQLITE_CORRUPT, raw.SQLITE_FULL, raw.SQLITE_CANTOPEN, raw.SQLITE_PROTOCOL, raw.SQLITE_SCHEMA, raw.SQLITE_NOLFS,
        raw.SQLITE_AUTH, raw.SQLITE_NOTADB, raw.SQLITE_PERM,
    ];

    public static bool IsTransient(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case SqliteException sqlite:
                    // The primary code is the low byte of the extended one (SQLITE_IOERR_WRITE is SQLITE_IOERR | 3<<8).
                    return Transient.Contains(sqlite.SqliteErrorCode & 0xFF) || Transient.Contains(sqlite.SqliteExtendedErrorCode & 0xFF);
                case PostgresException postgres:
                    return IsPostgresTransient(postgres);
                case NpgsqlException:
                    // No answer from the server at all (refused, reset, timed out, the pool exhausted).
                    return true;
                case IOException or TimeoutException or DatabaseFileMovedException:
                    return true;
            }
        }

        return false;
    }

    // PostgreSQL refused the transaction because of another one (deadlock, serialization failure): run it again at once.
    public static bool IsConflict(Exception ex) => ex is PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure };

    // Classes 08 (connection), 53 (insufficient resources: disk full, out of connections), 57 (operator intervention:
    // shutting down, cancelled), 58 (system error), and conflicts with other transactions.
    private static bool IsPostgresTransient(PostgresException postgres) =>
        postgres.SqlState[..2] is "08" or "53" or "57" or "58" || IsConflict(postgres);
}

// The database file was deleted or replaced under the running gateway (see DatabaseFile).
public sealed class DatabaseFileMovedException(string message) : IOException(message);
