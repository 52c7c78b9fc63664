using IotGateway.Ingest;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Gateway;

// Another process holding the database's write lock: ingest must pause without acknowledging (the broker
// keeps the messages), readiness must say so, and everything must be stored once the lock is gone.
public sealed class DatabaseTroubleTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task LockedDatabasePausesIngestWithoutLosingAReading()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using var device = await TestMqttClient.ConnectAsync(broker, "patient");
        await device.PublishAsync(TopicRoots.Default.For("patient").Data, """{"temp":1,"messageId":"before"}""");
        await gateway.WaitForDeviceAsync("patient", d => d.TelemetryCount == 1, "the first reading is stored");

        await using (var writeLock = await WriteLock.TakeAsync(gateway.DatabasePath))
        {
            for (var i = 0; i < 5; i++)
            {
                await device.PublishAsync(TopicRoots.Default.For("patient").Data, $$"""{"temp":2,"messageId":"during-{{i}}"}""");
            }

            var notReady = await Eventually.UntilAsync(async () =>
            {
                using var response = await gateway.Http.GetAsync("/health/ready");
                return response.StatusCode == HttpStatusCode.ServiceUnavailable ? await response.Content.ReadAsStringAsync() : null;
            }, Timeout, "readiness reports that messages cannot be stored");
            using var body = JsonDocument.Parse(notReady);
            Assert.Contains("cannot store messages", body.RootElement.GetProperty("checks").GetProperty("database").GetProperty("description").GetString(),
                StringComparison.Ordinal);
            Assert.True(gateway.Logs.Contains("they stay unacknowledged and will be retried"));

            // Reads do not wait for the writer's lock (WAL): the API still answers what is stored.
            Assert.Equal(1, (await gateway.GetDeviceAsync("patient"))!.TelemetryCount);

            // An operator's command meanwhile: a clear 503 to retry (after SQLite's busy timeout), not a 500, and
            // nothing half stored.
            using var refused = await gateway.Http.PostAsJsonAsync("/api/devices/patient/commands", new { command = "PING" });
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Equal("5", refused.Headers.GetValues("Retry-After").Single());
            using var problem = JsonDocument.Parse(await refused.Content.ReadAsStringAsync());
            Assert.Equal("Database not available", problem.RootElement.GetProperty("title").GetString());
            Assert.Contains("database is locked", problem.RootElement.GetProperty("detail").GetString(), StringComparison.Ordinal);

            await writeLock.ReleaseAsync();
        }

        await gateway.WaitForDeviceAsync("patient", d => d.TelemetryCount == 6, "every reading held back is stored once the lock is released", Timeout);
        await gateway.WaitUntilReadyAsync();
        Assert.True(gateway.Logs.Contains("Storage works again"));
        Assert.Equal(0, (await gateway.Http.GetFromJsonAsync<Devices.DeviceView>("/api/devices/patient", GatewayApp.Json))!.PendingCommands);
        using var accepted = await gateway.Http.PostAsJsonAsync("/api/devices/patient/commands", new { command = "PING" });
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
    }

    // The database refusing one reading for good (a constraint; a trigger stands in for whatever makes SQLite refuse a
    // statement): that is not the database's trouble but the message's, so retrying would hold up every device for
    // ever. The batch is split until the one reading is found: it is rejected with the database's reason and
    // acknowledged, and the others of its batch are stored.
    [SkippableFact]
    public async Task ABatchWithAReadingTheDatabaseRefusesIsSplitAndOnlyThatReadingIsRejected()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Ingest:RetryMaxDelaySeconds"] = "0.2");
        await using var device = await TestMqttClient.ConnectAsync(broker, "refused");
        await device.PublishAsync(TopicRoots.Default.For("refused").Data, """{"temp":1,"messageId":"before"}""");
        await gateway.WaitForDeviceAsync("refused", d => d.TelemetryCount == 1, "the first reading is stored");
        await ExecuteAsync(gateway.DatabasePath, """
            CREATE TRIGGER "TestRefuseReadings" BEFORE INSERT ON "Telemetry" WHEN NEW."Payload" LIKE '%poison%'
            BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;
            """);

        // A lock holds the writer on its first batch while the rest queue up behind it, to be taken as one batch.
        var queue = gateway.Services.GetRequiredService<IngestQueue>();
        await using (var writeLock = await WriteLock.TakeAsync(gateway.DatabasePath))
        {
            await device.PublishAsync(TopicRoots.Default.For("refused").Data, """{"temp":2,"messageId":"held"}""", MqttQualityOfServiceLevel.AtLeastOnce);
            await Eventually.UntilAsync(() => gateway.Logs.Contains("(attempt 1)"), Timeout, "the writer is held by the lock");
            for (var i = 0; i < 7; i++)
            {
                var poison = i == 4 ? ",\"note\":\"poison\"" : "";
                await device.PublishAsync(TopicRoots.Default.For("refused").Data, $$"""{"temp":3,"messageId":"batch-{{i}}"{{poison}}}""", MqttQualityOfServiceLevel.AtLeastOnce);
            }

            await Eventually.UntilAsync(() => queue.Count == 7, Timeout, "the seven readings wait in the queue");
            await writeLock.ReleaseAsync();
        }

        await gateway.WaitForDeviceAsync("refused", d => d.TelemetryCount == 8, "every reading but the refused one is stored", Timeout);
        await Eventually.UntilAsync(() => gateway.Logs.Contains("Message rejected (refused-by-database)"), Timeout, "the refused reading is rejected");
        Assert.True(gateway.Logs.Contains("A batch of 7 messages cannot be stored and is split"));
        Assert.True(gateway.Logs.Contains("refused by the test"));
        Assert.Equal(8, GatewayRows(gateway.DatabasePath, "refused"));
        await gateway.WaitUntilReadyAsync();
    }

    // Back-pressure: while the writer cannot commit, the bounded queue fills and stays full; the rest waits
    // unacknowledged in the broker rather than in the gateway's memory, and nothing is lost when it drains.
    [SkippableFact]
    public async Task SlowDatabaseFillsTheBoundedQueueAndTheBrokerHoldsTheRest()
    {
        const int Held = 200;
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s =>
        {
            s["Ingest:QueueCapacity"] = "8";
            s["Ingest:MaxBatchSize"] = "4";
            s["Ingest:RetryMaxDelaySeconds"] = "0.2";
            // Each attempt against the lock waits this long (5 s by default) before it fails.
            s["ConnectionStrings:Gateway"] += ";Default Timeout=1";
        });
        await using var device = await TestMqttClient.ConnectAsync(broker, "pressing");
        await device.PublishAsync(TopicRoots.Default.For("pressing").Data, """{"temp":1,"messageId":"before"}""");
        await gateway.WaitForDeviceAsync("pressing", d => d.TelemetryCount == 1, "the first reading is stored");

        var queue = gateway.Services.GetRequiredService<IngestQueue>();
        await using (var writeLock = await WriteLock.TakeAsync(gateway.DatabasePath))
        {
            for (var i = 0; i < Held; i++)
            {
                await device.PublishAsync(TopicRoots.Default.For("pressing").Data, $$"""{"temp":2,"messageId":"held-{{i}}"}""", MqttQualityOfServiceLevel.AtLeastOnce);
            }

            await Eventually.UntilAsync(() => queue.Count == 8 && gateway.Logs.Contains("(attempt 2)"), Timeout,
                "the queue is full and the writer keeps retrying its batch");
            Assert.Equal(8, queue.Count);

            await writeLock.ReleaseAsync();
        }

        await gateway.WaitForDeviceAsync("pressing", d => d.TelemetryCount == 1 + Held, "every reading the broker held back is stored", Timeout);
        Assert.Equal(1 + Held, GatewayRows(gateway.DatabasePath, "pressing"));
    }

    private static long GatewayRows(string databasePath, string deviceId) => StoredReadings.Count(databasePath, deviceId).Distinct;

    private static async Task ExecuteAsync(string databasePath, string sql)
    {
        await using var connection = Connection(databasePath);
        await connection.OpenAsync();
        await ExecuteAsync(connection, sql);
    }

    private static SqliteConnection Connection(string databasePath) => new($"Data Source={databasePath};Pooling=False");

    private static async Task ExecuteAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    // SQLite's write lock, held by a connection of its own as another process would hold it, until released.
    private sealed class WriteLock : IAsyncDisposable
    {
        private readonly SqliteConnection _connection;

        private WriteLock(SqliteConnection connection) => _connection = connection;

        public static async Task<WriteLock> TakeAsync(string databasePath)
        {
            var connection = Connection(databasePath);
            try
            {
                await connection.OpenAsync();
                await ExecuteAsync(connection, "BEGIN EXCLUSIVE;");
                return new WriteLock(connection);
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }

        public Task ReleaseAsync() => ExecuteAsync(_connection, "COMMIT;");

        public ValueTask DisposeAsync() => _connection.DisposeAsync();
    }
}
