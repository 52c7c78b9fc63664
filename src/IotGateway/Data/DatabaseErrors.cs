using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace IotGateway.Data;

// Whether a failed write is the database's trouble (it passes: a lock, a full disk, an I/O error, a file that
// is gone) or the data's (this message can never be stored: a constraint, a value out of range). Ingest retries
// the first with everything unacknowledged, and splits a batch over the second to find the one message to reject.
// Decided by result code, never by message text; another provider adds its codes here.
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
                case IOException or TimeoutException or DatabaseFileMovedException:
                    return true;
            }
        }

        return false;
    }
}

// The database file was deleted or replaced under the running gateway (see DatabaseFile).
public sealed class DatabaseFileMovedException(string message) : IOException(message);
