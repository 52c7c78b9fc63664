using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using IotGateway.Data.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Storage;

// SQLite plans a query without statistics until ANALYZE runs, which the gateway's database never has when it matters
// (a fresh file, a burst of new commands). Per-device lookups of Pending commands then walked (Status, Sequence)
// through every Pending command of the fleet: a bulk command for 10,000 devices did 10,000 such walks twice, once
// in the request and once in the lanes. These tests hold the plans, so that the cost stays per device.
public sealed partial class SqliteQueryPlanTests
{
    [Fact]
    public async Task ALanesNextPendingCommandIsFoundThroughItsDevicesPendingIndex()
    {
        await using var gateway = await StartAsync();
        await using var scope = gateway.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<SqliteGatewayDbContext>();
        using var captured = new CapturedCommands(db);
        // The same compiled query the lanes run (ICommandStore.NextPendingAsync). EF decides whether anyone listens at
        // most once a second (its logging cache), so the first run after subscribing may go unreported.
        var sql = await Eventually.UntilAsync(async () =>
        {
            await db.NextPendingCommandAsync("dev-1", DateTimeOffset.UnixEpoch, default);
            return captured.Texts.FirstOrDefault();
        }, TimeSpan.FromSeconds(10), "EF reports the lane's query");
        Assert.Contains("IX_Commands_Pending", Plan(gateway, sql));
    }

    [Fact]
    public async Task ANewBatchLooksForOlderPendingCommandsThroughTheDevicesPendingIndex()
    {
        await using var gateway = await StartAsync();
        Assert.Contains("IX_Commands_Pending", Plan(gateway, SqliteCommandStore.OlderPendingSql));
    }

    // A fleet's worth of Pending commands first, so the plan is the one a busy database gets.
    private static async Task<GatewayApp> StartAsync()
    {
        var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        gateway.Storage.Execute("""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
            INSERT INTO "Commands" ("Id", "DeviceId", "Name", "Status", "TtlSeconds", "CreatedAt", "ExpiresAt")
            SELECT lower(hex(randomblob(16))), 'dev-' || i, 'PING', 'Pending', 60, 0, 600000000000 FROM n
            """);
        return gateway;
    }

    // EXPLAIN QUERY PLAN of a statement, its parameters bound to NULL (the plan does not depend on their values).
    private static string Plan(GatewayApp gateway, string sql)
    {
        using var connection = gateway.Storage.Open(readOnly: true);
        using var command = (SqliteCommand)connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + sql;
        foreach (var name in ParameterName().Matches(sql).Select(m => m.Value).Distinct())
        {
            command.Parameters.AddWithValue(name, DBNull.Value);
        }

        using var reader = command.ExecuteReader();
        var plan = new List<string>();
        while (reader.Read())
        {
            plan.Add(reader.GetString(3));
        }

        return string.Join("\n", plan);
    }

    [GeneratedRegex(@"[$@][A-Za-z_][A-Za-z0-9_]*")]
    private static partial Regex ParameterName();

    // The statements one context runs, as EF reports them to its DiagnosticListener (other tests' contexts run
    // meanwhile, and a compiled query serves one model, so the gateway's own context is the one to watch).
    private sealed class CapturedCommands : IObserver<DiagnosticListener>, IObserver<KeyValuePair<string, object?>>, IDisposable
    {
        private readonly DbContext _context;
        private readonly IDisposable _listeners;
        private readonly ConcurrentQueue<string> _texts = new();
        private readonly List<IDisposable> _subscriptions = [];

        public CapturedCommands(DbContext context)
        {
            _context = context;
            _listeners = DiagnosticListener.AllListeners.Subscribe(this);
        }

        public IReadOnlyList<string> Texts => [.. _texts];

        public void OnNext(DiagnosticListener listener)
        {
            if (listener.Name == DbLoggerCategory.Name)
            {
                lock (_subscriptions)
                {
                    _subscriptions.Add(listener.Subscribe(this));
                }
            }
        }

        public void OnNext(KeyValuePair<string, object?> value)
        {
            if (value.Key == RelationalEventId.CommandExecuting.Name && value.Value is CommandEventData data && data.Context == _context)
            {
                _texts.Enqueue(data.Command.CommandText);
            }
        }

        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void Dispose()
        {
            _listeners.Dispose();
            lock (_subscriptions)
            {
                _subscriptions.ForEach(s => s.Dispose());
            }
        }
    }
}
