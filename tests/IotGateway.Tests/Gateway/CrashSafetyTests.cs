using Microsoft.Data.Sqlite;

namespace IotGateway.Tests.Gateway;

// The gateway as a separate process, killed or stopped in the middle of a burst of QoS 1 readings. The
// broker keeps whatever was not acknowledged, so after a restart every reading is stored, and the ones
// with ids exactly once. On both providers.
public sealed class SqliteCrashSafetyTests : CrashSafetyTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresCrashSafetyTests : CrashSafetyTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class CrashSafetyTests
{
    protected abstract DatabaseProvider Provider { get; }

    private const int Burst = 20_000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task KilledMidBurstLosesNoReadingAndStoresNoneTwice()
    {
        await using var broker = await StartBrokerAsync();
        using var data = new TempDirectory("iotgw-crash-");
        var (settings, storage) = await GatewaySettingsAsync(broker, data.Path);

        var gateway = GatewayProcess.Start(BuiltGateway.Dll, data.Path, settings);
        try
        {
            await gateway.WaitUntilReadyAsync(Timeout);
            var publishing = PublishBurstAsync(broker, "burst-kill");
            await Eventually.UntilAsync(() => StoredReadings(storage, "burst-kill") > 1000, Timeout, "the gateway is storing the burst");
            gateway.Kill();
            await gateway.WaitForExitAsync(Timeout);
            var storedAtKill = StoredReadings(storage, "burst-kill");
            Assert.True(storedAtKill < Burst, $"the kill came mid-burst ({storedAtKill} of {Burst} stored)");
            await publishing;
        }
        finally
        {
            await gateway.DisposeAsync();
        }

        await using var restarted = GatewayProcess.Start(BuiltGateway.Dll, data.Path, settings);
        await restarted.WaitUntilReadyAsync(Timeout);
        await Eventually.UntilAsync(() => StoredReadings(storage, "burst-kill") >= Burst, Timeout, "the broker redelivers the rest after the restart");
        await AssertStoredExactlyOnceAsync(restarted, storage, "burst-kill");
    }

    [SkippableFact]
    public async Task GracefulStopFlushesWhatItReceivedAndLosesNothing()
    {
        await using var broker = await StartBrokerAsync();
        using var data = new TempDirectory("iotgw-crash-");
        var (settings, storage) = await GatewaySettingsAsync(broker, data.Path);

        await using (var gateway = GatewayProcess.Start(BuiltGateway.Dll, data.Path, settings))
        {
            await gateway.WaitUntilReadyAsync(Timeout);
            var publishing = PublishBurstAsync(broker, "burst-term");
            await Eventually.UntilAsync(() => StoredReadings(storage, "burst-term") > 1000, Timeout, "the gateway is storing the burst");
            gateway.Terminate();
            await gateway.WaitForExitAsync(Timeout);
            Assert.Equal(0, gateway.ExitCode);
            Assert.Contains(gateway.Output, l => l.Contains("the persistent session keeps queueing", StringComparison.Ordinal));
            await publishing;
        }

        await using var restarted = GatewayProcess.Start(BuiltGateway.Dll, data.Path, settings);
        await restarted.WaitUntilReadyAsync(Timeout);
        await Eventually.UntilAsync(() => StoredReadings(storage, "burst-term") >= Burst, Timeout, "the rest arrives after the restart");
        await AssertStoredExactlyOnceAsync(restarted, storage, "burst-term");
    }

    private static async Task AssertStoredExactlyOnceAsync(GatewayProcess gateway, GatewayStorage storage, string deviceId)
    {
        using var http = new HttpClient { BaseAddress = gateway.BaseAddress };
        http.DefaultRequestHeaders.Add("X-API-Key", GatewayApp.ReaderKey);
        var device = await http.GetFromJsonAsync<DeviceView>($"/api/devices/{deviceId}", GatewayApp.Json);
        Assert.Equal(Burst, device!.TelemetryCount);
        var (rows, distinct) = Infrastructure.StoredReadings.Count(storage, deviceId);
        Assert.Equal(Burst, rows);
        Assert.Equal(Burst, distinct);
    }

    private async Task<(Dictionary<string, string> Settings, GatewayStorage Storage)> GatewaySettingsAsync(MosquittoBroker broker, string dataDirectory)
    {
        var settings = new Dictionary<string, string>
        {
            ["BROKER"] = broker.Url,
            ["SERVER_ID"] = $"gw-crash-{Guid.NewGuid():N}",
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["ConnectionStrings__Gateway"] = $"Data Source={Path.Combine(dataDirectory, "gateway.db")}",
            ["Mqtt__ReconnectMinDelaySeconds"] = "0.1",
            ["Api__Keys__0__Key"] = GatewayApp.ReaderKey,
        };
        if (Provider == DatabaseProvider.Sqlite)
        {
            return (settings, GatewayStorage.Sqlite(Path.Combine(dataDirectory, "gateway.db")));
        }

        var database = await TestPostgres.CreateDatabaseAsync();
        settings["Database__Provider"] = nameof(DatabaseProvider.PostgreSQL);
        settings["ConnectionStrings__Gateway"] = database;
        return (settings, GatewayStorage.Postgres(database));
    }

    internal static async Task PublishBurstAsync(MosquittoBroker broker, string deviceId)
    {
        await using var device = await TestMqttClient.ConnectAsync(broker, $"{deviceId}-publisher");
        using var inflight = new SemaphoreSlim(64);
        var publishes = Enumerable.Range(0, Burst).Select(async i =>
        {
            await inflight.WaitAsync();
            try
            {
                await device.PublishAsync(new MqttApplicationMessageBuilder()
                    .WithTopic(TopicRoots.Default.For(deviceId).Data)
                    .WithPayload($$"""{"deviceId":"{{deviceId}}","messageType":"DATA","temp":21.5,"messageId":"{{deviceId}}-{{i}}"}""")
                    .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
                    .Build());
            }
            finally
            {
                inflight.Release();
            }
        });
        await Task.WhenAll(publishes);
    }

    // Read straight from the database, as a second process would: no API, no gateway needed.
    private static long StoredReadings(GatewayStorage storage, string deviceId)
    {
        try
        {
            return Infrastructure.StoredReadings.Count(storage, deviceId).Rows;
        }
        catch (Exception ex) when (ex is SqliteException or Npgsql.PostgresException)
        {
            return 0; // not migrated yet
        }
    }

    private async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        if (Provider == DatabaseProvider.PostgreSQL)
        {
            Requires.PostgreSql();
        }

        return await MosquittoBroker.StartAsync();
    }
}
