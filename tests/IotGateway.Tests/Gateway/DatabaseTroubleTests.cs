using System.Net;
using System.Text.Json;
using IotGateway.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace IotGateway.Tests.Gateway;

// Another process holding the database's write lock: ingest must pause without acknowledging (the broker
// keeps the messages), readiness must say so, and everything must be stored once the lock is gone.
public sealed class DatabaseTroubleTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task LockedDatabasePausesIngestWithoutLosingAReading()
    {
        MosquittoBroker.SkipIfUnavailable();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url);
        await using var device = await TestMqttClient.ConnectAsync(broker, "patient");
        await device.PublishAsync("iot/data/patient", """{"temp":1,"messageId":"before"}""");
        await gateway.WaitForDeviceAsync("patient", d => d.TelemetryCount == 1, "the first reading is stored");

        await using (var locker = new SqliteConnection($"Data Source={gateway.DatabasePath};Pooling=False"))
        {
            await locker.OpenAsync();
            await using (var begin = locker.CreateCommand())
            {
                begin.CommandText = "BEGIN EXCLUSIVE;";
                await begin.ExecuteNonQueryAsync();
            }

            for (var i = 0; i < 5; i++)
            {
                await device.PublishAsync("iot/data/patient", $$"""{"temp":2,"messageId":"during-{{i}}"}""");
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

            await using var commit = locker.CreateCommand();
            commit.CommandText = "COMMIT;";
            await commit.ExecuteNonQueryAsync();
        }

        await gateway.WaitForDeviceAsync("patient", d => d.TelemetryCount == 6, "every reading held back is stored once the lock is released", Timeout);
        await gateway.WaitUntilReadyAsync();
        Assert.True(gateway.Logs.Contains("Storage works again"));
    }
}
