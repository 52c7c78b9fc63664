using IotGateway.Ingest;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace IotGateway.Tests.Gateway;

// Readiness must say when ingest cannot do its job even though nothing raises an error: a writer that does not move,
// a database file that is no longer the one the gateway writes into.
public sealed class IngestReadinessTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // A real stall: the test takes the database's write gate, so the writer waits on it with a reading in hand and no
    // error to report.
    [SkippableFact]
    public async Task AWriterThatMakesNoProgressFailsReadinessUntilItMovesAgain()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Ingest:StallSeconds"] = "1");
        await using var device = await TestMqttClient.ConnectAsync(broker, "stalled");
        var gate = gateway.Services.GetRequiredService<DatabaseWriteGate>();

        using (await gate.EnterAsync(CancellationToken.None))
        {
            await device.PublishAsync(TopicRoots.Default.For("stalled").Data, """{"temp":1}""");
            await device.PublishAsync(TopicRoots.Default.For("stalled").Data, """{"temp":2}""");
            var body = await Eventually.UntilAsync(async () =>
            {
                using var response = await gateway.Http.GetAsync("/health/ready");
                return response.StatusCode == HttpStatusCode.ServiceUnavailable ? await response.Content.ReadAsStringAsync() : null;
            }, Timeout, "readiness reports the stalled writer");
            Assert.Contains("ingest is not making progress", body, StringComparison.Ordinal);
            Assert.Contains("Ingest:StallSeconds", body, StringComparison.Ordinal);
        }

        await gateway.WaitForDeviceAsync("stalled", d => d.TelemetryCount == 2, "the readings are stored once the writer moves", Timeout);
        await gateway.WaitUntilReadyAsync();
    }

    [Fact]
    public void AWriterIsStalledOnlyWithMessagesQueuedAndNoMoveForTheThreshold()
    {
        var time = new FakeTimeProvider();
        var progress = new IngestProgress(time);
        var threshold = TimeSpan.FromSeconds(30);

        progress.Waiting();
        time.Advance(TimeSpan.FromHours(1));
        Assert.Null(progress.StalledFor(queued: 5, threshold)); // waiting for messages: it wakes when they come

        progress.Took(8);
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.Null(progress.StalledFor(queued: 0, threshold));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(TimeSpan.FromSeconds(31), progress.StalledFor(queued: 0, threshold)); // the batch in hand waits

        progress.Stored(); // half of it split off and stored
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.Null(progress.StalledFor(queued: 0, threshold));

        progress.Done();
        time.Advance(threshold);
        Assert.Null(progress.StalledFor(queued: 0, threshold)); // nothing waits
        Assert.NotNull(progress.StalledFor(queued: 3, threshold)); // queued, and the writer neither took them nor waits

        progress.Waiting();
        progress.Stopped(); // the writer's loop ended: queued messages will not move
        time.Advance(threshold);
        Assert.NotNull(progress.StalledFor(queued: 1, threshold));
    }

    // Deleted under the running gateway: readiness fails and the reading that arrives next is not acknowledged into the
    // unlinked file, so the broker delivers it again to the restarted gateway, which stores it in the new database.
    [SkippableFact]
    public async Task ADeletedDatabaseFileFailsReadinessAndNothingIsAcknowledgedIntoIt()
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        await using var gateway = await GatewayApp.StartAsync(broker.Url, s => s["Ingest:RetryMaxDelaySeconds"] = "0.2");
        await using var device = await TestMqttClient.ConnectAsync(broker, "orphan");
        await device.PublishAsync(TopicRoots.Default.For("orphan").Data, """{"temp":1,"messageId":"before"}""");
        await gateway.WaitForDeviceAsync("orphan", d => d.TelemetryCount == 1, "the first reading is stored");

        foreach (var file in new[] { "", "-wal", "-shm" })
        {
            File.Delete(gateway.DatabasePath + file);
        }

        await device.PublishAsync(TopicRoots.Default.For("orphan").Data, """{"temp":2,"messageId":"after-delete"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        var body = await Eventually.UntilAsync(async () =>
        {
            using var response = await gateway.Http.GetAsync("/health/ready");
            return response.StatusCode == HttpStatusCode.ServiceUnavailable ? await response.Content.ReadAsStringAsync() : null;
        }, Timeout, "readiness reports the deleted file");
        Assert.Contains("deleted or replaced", body, StringComparison.Ordinal);
        await Eventually.UntilAsync(() => gateway.Logs.Contains("they stay unacknowledged"), Timeout, "the writer holds the reading back");

        // A new process in production; here the same one, whose SQLite connection pool still holds connections to the
        // deleted file.
        await gateway.StopAsync();
        SqliteConnection.ClearAllPools();
        await gateway.RestartAsync();
        var device2 = await gateway.WaitForDeviceAsync("orphan", d => d.TelemetryCount == 1, "the reading comes again and is stored in the new file", Timeout);
        Assert.Equal(1, device2.TelemetryCount);
        Assert.Equal(1, StoredReadings.Count(gateway.DatabasePath, "orphan").Rows);
    }
}
