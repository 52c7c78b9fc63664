using Npgsql;
using NpgsqlTypes;

namespace IotGateway.Data.PostgreSql;

// The small pieces every PostgreSQL statement class uses: typed positional parameters (what NpgsqlBatch takes), and
// a transaction that is run again when PostgreSQL refuses it because of another one (a deadlock between two
// instances' batches, a serialization failure).
internal static class PostgresSql
{
    private const int ConflictAttempts = 5;

    public static NpgsqlParameter Text(string? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    public static NpgsqlParameter Bigint(long? value) => new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint };

    public static NpgsqlParameter Integer(int value) => new() { Value = value, NpgsqlDbType = NpgsqlDbType.Integer };

    public static NpgsqlParameter Boolean(bool value) => new() { Value = value, NpgsqlDbType = NpgsqlDbType.Boolean };

    public static NpgsqlParameter TextArray(IReadOnlyList<string?> values) =>
        new() { Value = values as string?[] ?? [.. values], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text };

    public static NpgsqlParameter BigintArray(IReadOnlyList<long?> values) =>
        new() { Value = values as long?[] ?? [.. values], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint };

    public static NpgsqlParameter IntegerArray(IReadOnlyList<int> values) =>
        new() { Value = values as int[] ?? [.. values], NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Integer };

    public static NpgsqlBatchCommand Statement(string sql, params NpgsqlParameter[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        command.Parameters.AddRange(parameters);
        return command;
    }

    public static async Task<T> InTransactionAsync<T>(NpgsqlDataSource dataSource, Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work,
        CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            try
            {
                var result = await work(connection, transaction);
                await transaction.CommitAsync(cancellationToken);
                return result;
            }
            catch (PostgresException ex) when (DatabaseErrors.IsConflict(ex) && attempt < ConflictAttempts)
            {
                // Rolled back with the connection; the other transaction went through. Again, at once.
            }
        }
    }

    public static async Task<List<T>> ReadAllAsync<T>(NpgsqlDataReader reader, Func<NpgsqlDataReader, T> read, CancellationToken cancellationToken)
    {
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(read(reader));
        }

        return rows;
    }
}
