using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace IotGateway.Data;

// One raw-SQL write: the write gate held, the context's connection open, one SQLite transaction, and the
// statements prepared on it. Raw SQL where the writers need INSERT … ON CONFLICT or RETURNING, which EF Core
// does not express, or prepared statements repeated many times. Disposing without CommitAsync rolls back;
// the gate is released last. Statements run synchronously on purpose: SQLite work is in-process CPU.
public sealed class WriteTransaction : IAsyncDisposable
{
    private readonly DatabaseWriteGate.Releaser _gate;
    private readonly IDbContextTransaction _transaction;
    private readonly SqliteConnection _connection;
    private readonly List<SqliteCommand> _commands = [];

    private WriteTransaction(DatabaseWriteGate.Releaser gate, IDbContextTransaction transaction, SqliteConnection connection)
    {
        _gate = gate;
        _transaction = transaction;
        _connection = connection;
    }

    public static async Task<WriteTransaction> BeginAsync(DatabaseWriteGate writeGate, GatewayDbContext db, CancellationToken cancellationToken)
    {
        var gate = await writeGate.EnterAsync(cancellationToken);
        try
        {
            await db.Database.OpenConnectionAsync(cancellationToken);
            var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            return new WriteTransaction(gate, transaction, (SqliteConnection)db.Database.GetDbConnection());
        }
        catch
        {
            gate.Dispose();
            throw;
        }
    }

    // A statement on this transaction with the named parameters in this order (set them by index or name).
    public SqliteCommand Prepare(string sql, params string[] parameterNames)
    {
        var command = _connection.CreateCommand();
        command.Transaction = (SqliteTransaction)_transaction.GetDbTransaction();
        command.CommandText = sql;
        foreach (var name in parameterNames)
        {
            command.Parameters.Add(new SqliteParameter { ParameterName = name });
        }

        command.Prepare();
        _commands.Add(command);
        return command;
    }

    public Task CommitAsync(CancellationToken cancellationToken = default) => _transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            foreach (var command in _commands)
            {
                await command.DisposeAsync();
            }

            await _transaction.DisposeAsync();
        }
        finally
        {
            _gate.Dispose();
        }
    }
}
