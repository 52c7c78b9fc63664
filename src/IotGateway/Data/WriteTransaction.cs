using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace IotGateway.Data;

// One raw-SQL write: the write gate held and one SQLite transaction (BEGIN IMMEDIATE) on the gate's writer
// connection, whose statements are prepared once and reused. Raw SQL where the writers need INSERT … ON CONFLICT
// or RETURNING, which EF Core does not express, or statements repeated many times. Disposing without Commit
// rolls back and reopens the writer connection; the gate is released last. Statements run synchronously on
// purpose: SQLite work is in-process CPU.
public sealed class WriteTransaction : IAsyncDisposable
{
    private readonly DatabaseWriteGate _writeGate;
    private readonly DatabaseWriteGate.Releaser _gate;
    private readonly SqliteTransaction _transaction;
    private bool _committed;

    private WriteTransaction(DatabaseWriteGate writeGate, DatabaseWriteGate.Releaser gate, SqliteTransaction transaction)
    {
        _writeGate = writeGate;
        _gate = gate;
        _transaction = transaction;
    }

    public static async Task<WriteTransaction> BeginAsync(DatabaseWriteGate writeGate, CancellationToken cancellationToken)
    {
        var gate = await writeGate.EnterAsync(cancellationToken);
        try
        {
            return new WriteTransaction(writeGate, gate, writeGate.Connection().BeginTransaction());
        }
        catch
        {
            writeGate.Reset();
            gate.Dispose();
            throw;
        }
    }

    // The statement for this SQL on this transaction, with the named parameters in this order (set them by index
    // or name; every use must set all of them, values from the last use are still there).
    public SqliteCommand Prepare(string sql, params string[] parameterNames)
    {
        var command = _writeGate.Statement(sql, parameterNames);
        command.Transaction = _transaction;
        return command;
    }

    // The same, for SQLite's own API: statements run on this connection join this transaction.
    internal sqlite3_stmt PrepareNative(string sql) => _writeGate.NativeStatement(sql);

    internal sqlite3 NativeConnection => _writeGate.Connection().Handle!;

    public void Commit()
    {
        _transaction.Commit();
        _committed = true;
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            if (!_committed)
            {
                try
                {
                    _transaction.Rollback();
                }
                catch (SqliteException)
                {
                    // Closing the connection (below) discards the transaction anyway.
                }

                _writeGate.Reset();
            }
        }
        finally
        {
            _gate.Dispose();
        }

        return ValueTask.CompletedTask;
    }
}
