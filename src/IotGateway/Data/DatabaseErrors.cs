using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace IotGateway.Data;

public static class DatabaseErrors
{
    // A failure of the database or of the way to it (locked, full, unreachable, restarting), not a bug: a writer keeps
    // its work and tries again.
    public static bool IsStorageFailure(Exception ex) =>
        ex is SqliteException or NpgsqlException or DbUpdateException or InvalidOperationException or IOException or TimeoutException;

    // PostgreSQL refused the transaction because of another one (deadlock, serialization failure): run it again at once.
    public static bool IsConflict(Exception ex) => ex is PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure };
}
