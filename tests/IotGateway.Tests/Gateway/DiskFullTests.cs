using Microsoft.Data.Sqlite;

namespace IotGateway.Tests.Gateway;

// A really full disk under the database (a small tmpfs filled to the last page): ingest must pause without
// acknowledging (the broker keeps the messages), readiness must say why, the process must stay alive, and
// once space is freed every reading must be stored exactly once without the device sending it again.
public sealed class DiskFullTests
{
    private const int Readings = 200;
    private const int ReadingsBefore = 3;
    private const string DeviceId = "disk-full";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task FullDiskPausesIngestWithoutLosingAReading()
    {
        await using var run = await GatewayOnTmpfs.StartAsync();
        var gateway = run.Gateway;
        var filler = FillUp(run.Disk);
        await PublishOnceEachAsync(run.Device);
        await AssertNotReadyBecauseTheDiskIsFullAsync(gateway);

        // Not one failure and a lucky retry: the writer keeps failing, and keeps the readings, as long as the disk stays full.
        await Eventually.UntilAsync(() => gateway.Logs.Contains("(attempt 3)"), Timeout, "the writer has retried the same batch three times");
        Assert.Equal(ReadingsBefore, (await gateway.GetDeviceAsync(DeviceId))!.TelemetryCount);
        using (var live = await gateway.Http.GetAsync("/health/live"))
        {
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }

        // An operator's command cannot be stored either: a 503 that says why, not a 500.
        using (var refused = await gateway.Http.PostAsJsonAsync($"/api/devices/{DeviceId}/commands", new { command = "PING" }))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Contains("full", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        File.Delete(filler);

        await WaitForAllStoredAsync(gateway, "every reading held back is stored once space is freed");
        await gateway.WaitUntilReadyAsync();
        Assert.True(gateway.Logs.Contains("Storage works again"));
        AssertEveryReadingStoredOnce(run.Disk);
    }

    // The readings held back live only in the gateway's memory and the broker's session. Stopping the gateway
    // throws the memory away: only if nothing was acknowledged does the broker still have them to deliver again.
    [SkippableFact]
    public async Task ReadingsHeldBackByAFullDiskSurviveAGatewayRestart()
    {
        await using var run = await GatewayOnTmpfs.StartAsync();
        var gateway = run.Gateway;
        var filler = FillUp(run.Disk);
        await PublishOnceEachAsync(run.Device);
        await AssertNotReadyBecauseTheDiskIsFullAsync(gateway);

        await gateway.StopAsync();
        File.Delete(filler);
        await gateway.RestartAsync();

        await WaitForAllStoredAsync(gateway, "the broker delivers every unacknowledged reading again after the restart");
        AssertEveryReadingStoredOnce(run.Disk);
    }

    // A gateway (re)started while the disk is full cannot open its database: it must stay up, say why, keep off
    // the broker (which holds the readings meanwhile) and carry on by itself once there is space again.
    [SkippableFact]
    public async Task GatewayStartedOnAFullDiskWaitsForSpaceInsteadOfExiting()
    {
        await using var run = await GatewayOnTmpfs.StartAsync();
        var gateway = run.Gateway;
        await gateway.StopAsync();
        var filler = FillUp(run.Disk);
        await PublishOnceEachAsync(run.Device);

        var connectsBefore = Connects(gateway);
        await gateway.RestartAsync(waitUntilReady: false, waitForDatabase: false);
        // "opening the database" until the first attempt fails, then the reason.
        var description = await Eventually.UntilAsync(async () =>
        {
            using var response = await gateway.Http.GetAsync("/health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            var database = body.RootElement.GetProperty("checks").GetProperty("database").GetProperty("description").GetString();
            return database?.StartsWith("cannot open the database: ", StringComparison.Ordinal) == true ? database : null;
        }, Timeout, "readiness reports why the database cannot be opened");
        Assert.Matches("database or disk is full|disk I/O error", description);

        await Eventually.UntilAsync(() => gateway.Logs.Contains("Cannot open the database (attempt 2)"), Timeout, "the gateway keeps trying");
        using (var live = await gateway.Http.GetAsync("/health/live"))
        {
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }

        using (var api = await gateway.Http.GetAsync("/api/devices"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, api.StatusCode);
            Assert.Equal("application/problem+json", api.Content.Headers.ContentType?.MediaType);
            Assert.NotNull(api.Headers.RetryAfter);
        }

        Assert.True(Connects(gateway) == connectsBefore, "the gateway stays off the broker while it cannot store anything");

        File.Delete(filler);
        await gateway.WaitUntilReadyAsync(Timeout);
        await WaitForAllStoredAsync(gateway, "the readings the broker kept are stored once the database opens");
        Assert.True(gateway.Logs.Contains("Database opened after"));
        AssertEveryReadingStoredOnce(run.Disk);
    }

    private static int Connects(GatewayApp gateway) => gateway.Logs.Lines.Count(l => l.Contains("Connecting to broker", StringComparison.Ordinal));

    private static Task<GatewayApp> StartGatewayAsync(MosquittoBroker broker, string disk) =>
        GatewayApp.StartAsync(broker.Url, s =>
        {
            s["ConnectionStrings:Gateway"] = ConnectionString(disk);
            // The writer's back-off is capped at 5 s by default; a short cap keeps the recovery within the test's budget.
            s["Ingest:RetryMaxDelaySeconds"] = "0.2";
        });

    // The full disk must meet a live WAL database, not one still to be created.
    private static async Task StoreFirstReadingsAsync(GatewayApp gateway, TestMqttClient device, string disk)
    {
        await device.PublishAsync(TopicRoots.Default.For(DeviceId).Register, "SIGN_IN");
        for (var i = 0; i < ReadingsBefore; i++)
        {
            await device.PublishAsync(TopicRoots.Default.For(DeviceId).Data, $$"""{"temp":1,"messageId":"before-{{i}}"}""");
        }

        await gateway.WaitForDeviceAsync(DeviceId, d => d.SignedIn && d.TelemetryCount == ReadingsBefore, "the first readings are stored");
        var database = DatabasePath(disk);
        Assert.True(File.Exists(database + "-wal") && File.Exists(database + "-shm"), "the database runs in WAL mode with its -wal and -shm files");
    }

    // Each reading is published once, QoS 1: the broker acknowledges it to the device and from then on owns it.
    private static async Task PublishOnceEachAsync(TestMqttClient device)
    {
        for (var i = 0; i < Readings; i++)
        {
            await device.PublishAsync(TopicRoots.Default.For(DeviceId).Data, $$"""{"temp":2,"messageId":"during-{{i}}"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        }
    }

    private static async Task AssertNotReadyBecauseTheDiskIsFullAsync(GatewayApp gateway)
    {
        var notReady = await Eventually.UntilAsync(async () =>
        {
            using var response = await gateway.Http.GetAsync("/health/ready");
            return response.StatusCode == HttpStatusCode.ServiceUnavailable ? await response.Content.ReadAsStringAsync() : null;
        }, Timeout, "readiness reports that messages cannot be stored");
        using var body = JsonDocument.Parse(notReady);
        var description = body.RootElement.GetProperty("checks").GetProperty("database").GetProperty("description").GetString();
        Assert.Contains("cannot store messages", description, StringComparison.Ordinal);
        Assert.Contains("database or disk is full", description, StringComparison.Ordinal);
        Assert.True(gateway.Logs.Contains("they stay unacknowledged and will be retried: SQLite Error 13: 'database or disk is full'"),
            "the gateway logs why it cannot store the readings");
    }

    // Reports the last count on a timeout, so a failure says how many readings were lost (or stored twice).
    private static Task<long> WaitForAllStoredAsync(GatewayApp gateway, string because) =>
        Eventually.UntilAsync(async () => (await gateway.GetDeviceAsync(DeviceId))!.TelemetryCount,
            count => count == ReadingsBefore + Readings, Timeout, $"{because} ({ReadingsBefore + Readings} readings)");

    private static string DatabasePath(string disk) => Path.Combine(disk, "gateway.db");

    private static string ConnectionString(string disk) => $"Data Source={DatabasePath(disk)}";

    // The pool keeps native handles on the files open after the host is gone; the tmpfs cannot be unmounted under them.
    private static void ReleasePooledConnections(string disk)
    {
        using var connection = new SqliteConnection(StorageSetup.ResolveConnectionString(ConnectionString(disk)));
        SqliteConnection.ClearPool(connection);
    }

    // Writes zeros until the file system refuses: big blocks first, then single pages, then single bytes.
    // Returns the filler file, whose deletion frees the space again.
    private static string FillUp(string disk)
    {
        var path = Path.Combine(disk, "filler");
        using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            foreach (var size in new[] { 1024 * 1024, 4096, 1 })
            {
                var block = new byte[size];
                try
                {
                    while (true)
                    {
                        stream.Write(block);
                    }
                }
                catch (IOException e) when (IsDiskFull(e))
                {
                    // This block size no longer fits: try the next, smaller one.
                }
            }
        }

        var available = new DriveInfo(disk).AvailableFreeSpace;
        Assert.True(available == 0, $"the tmpfs is full ({available} bytes left)");
        return path;
    }

    // .NET puts the errno into HResult on Unix; ENOSPC is 28 on Linux (and macOS).
    private static bool IsDiskFull(IOException e) => e.HResult == 28;

    // Read straight from the file, as a second process would: the API's count is a counter, the rows are the truth.
    private static void AssertEveryReadingStoredOnce(string disk)
    {
        var (rows, distinct) = StoredReadings.Count(DatabasePath(disk), DeviceId);
        Assert.Equal(ReadingsBefore + Readings, rows);
        Assert.Equal(ReadingsBefore + Readings, distinct);
    }

    // What every test here starts from: Mosquitto, and a gateway whose database lives on its own small tmpfs,
    // with a device that has signed in and stored its first readings.
    private sealed class GatewayOnTmpfs : IAsyncDisposable
    {
        private readonly TmpfsMount _mount;
        private readonly MosquittoBroker _broker;
        private GatewayApp? _gateway;
        private TestMqttClient? _device;

        private GatewayOnTmpfs(TmpfsMount mount, MosquittoBroker broker)
        {
            _mount = mount;
            _broker = broker;
        }

        public string Disk => _mount.Path;

        public GatewayApp Gateway => _gateway!;

        public TestMqttClient Device => _device!;

        public static async Task<GatewayOnTmpfs> StartAsync()
        {
            Requires.Mosquitto();
            var mount = await TmpfsMount.MountAsync("8m");
            MosquittoBroker broker;
            try
            {
                broker = await MosquittoBroker.StartAsync();
            }
            catch
            {
                await mount.DisposeAsync();
                throw;
            }

            var run = new GatewayOnTmpfs(mount, broker);
            try
            {
                run._gateway = await StartGatewayAsync(run._broker, run.Disk);
                run._device = await TestMqttClient.ConnectAsync(run._broker, DeviceId);
                await StoreFirstReadingsAsync(run._gateway, run._device, run.Disk);
                return run;
            }
            catch
            {
                await run.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_device is not null)
            {
                await _device.DisposeAsync();
            }

            if (_gateway is not null)
            {
                await _gateway.DisposeAsync();
            }

            ReleasePooledConnections(Disk);
            await _broker.DisposeAsync();
            await _mount.DisposeAsync();
        }
    }

    // A size-limited tmpfs on a fresh temp directory. Mounting needs root (CAP_SYS_ADMIN); without it the test skips.
    private sealed class TmpfsMount : IAsyncDisposable
    {
        private TmpfsMount(string path) => Path = path;

        public string Path { get; }

        public static async Task<TmpfsMount> MountAsync(string size)
        {
            var path = Directory.CreateTempSubdirectory("iotgw-diskfull-").FullName;
            var (exitCode, output) = await ExternalTool.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={size}", "tmpfs", path]);
            if (exitCode != 0)
            {
                Directory.Delete(path);
                Skip.If(true, $"a small tmpfs is needed to fill a disk, and 'mount -t tmpfs' failed (exit code {exitCode}; needs root or CAP_SYS_ADMIN): {output}");
            }

            return new TmpfsMount(path);
        }

        public async ValueTask DisposeAsync()
        {
            var (exitCode, _) = await ExternalTool.RunAsync("umount", [Path]);
            if (exitCode != 0)
            {
                // Something still holds a file open: detach now, the kernel frees it when the last handle closes.
                await ExternalTool.RunAsync("umount", ["-l", Path]);
            }

            Directory.Delete(Path, recursive: true);
        }
    }
}
