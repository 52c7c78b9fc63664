using IotGateway.Commands;
using IotGateway.Data.PostgreSql;
using IotGateway.Ingest;
using Microsoft.Extensions.DependencyInjection;

namespace IotGateway.Tests.Gateway;

// Two gateways, one Mosquitto, one PostgreSQL database, as "Running several gateways" in the README deploys them:
// each instance its own client id and persistent session, readings and answers split through a shared subscription,
// presence on both, commands published once by whichever instance holds the device's lane.
public sealed class SeveralGatewaysTests
{
    private const string Group = "gateways";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan SignalTimeout = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public async Task ReadingsFromManyDevicesAreSplitBetweenTheInstancesAndEachStoredOnce()
    {
        const int Devices = 20, PerDevice = 50;
        await using var pair = await GatewayPair.StartAsync();
        var (broker, first, second) = pair;

        for (var d = 0; d < Devices; d++)
        {
            await using var device = await TestMqttClient.ConnectAsync(broker, $"split-{d}");
            for (var i = 0; i < PerDevice; i++)
            {
                await device.PublishAsync(TopicRoots.Default.For($"split-{d}").Data, $$"""{"temp":{{i}},"messageId":"split-{{d}}-{{i}}"}""", MqttQualityOfServiceLevel.AtLeastOnce);
            }
        }

        await Eventually.UntilAsync(() => Task.FromResult(first.Storage.Scalar("""SELECT COUNT(*) FROM "Telemetry" """)), rows => rows >= Devices * PerDevice, Timeout,
            "every reading is stored");
        for (var d = 0; d < Devices; d++)
        {
            var (rows, distinct) = StoredReadings.Count(first.Storage, $"split-{d}");
            Assert.Equal(PerDevice, rows);
            Assert.Equal(PerDevice, distinct);
            Assert.Equal(PerDevice, (await second.GetDeviceAsync($"split-{d}"))!.TelemetryCount);
        }

        // The broker gave each instance a share, and the shares add up to all of it: no reading went to both.
        await pair.WaitForStoredCountsAsync(Devices * PerDevice, Timeout);
        Assert.True(pair.StoredByFirst > 0 && pair.StoredBySecond > 0, $"both instances received readings ({pair.StoredByFirst} and {pair.StoredBySecond})");
        Assert.Equal(Devices * PerDevice, pair.StoredByFirst + pair.StoredBySecond);
    }

    [SkippableFact]
    public async Task ACommandQueuedOnOneInstanceIsWaitedForAndCancelledOnTheOther()
    {
        await using var pair = await GatewayPair.StartAsync();
        var (_, first, second) = pair;
        var device = await pair.SignInAsync("shared-pump");

        // Queued on the first, waited for on the second: it returns when the answer is stored, by either instance.
        var queued = await first.QueueCommandAsync("shared-pump", new { command = "PING" });
        // Waits longer than the test does: only the signal from the other instance can end it in time.
        var waiting = second.Http.GetFromJsonAsync<CommandView>($"/api/commands/{queued.Id}?waitSeconds=60", GatewayApp.Json);
        await device.WaitForMessageAsync(m => m.Payload.Contains(queued.Id.ToString()), Timeout);
        await Eventually.UntilAsync(() => second.Services.GetRequiredService<CommandCompletion>().IsAwaited(queued.Id), Timeout, "the GET waits");
        await device.PublishAsync(TopicRoots.Default.For("shared-pump").CommandResponse, GatewayEndToEndTests.ArticleAnswer("shared-pump", queued.Id, "PING", "PONG"));
        var done = await waiting.WaitAsync(SignalTimeout);
        Assert.Equal(CommandStatus.Completed, done!.Status);

        // Queued on the first while the device is away, cancelled on the second: the first's waiter hears of it.
        await device.DisconnectAsync();
        var doomed = await first.QueueCommandAsync("shared-pump", new { command = "REBOOT" });
        await first.WaitForCommandAsync(doomed.Id, CommandStatus.Published);
        var waitOnFirst = first.Http.GetFromJsonAsync<CommandView>($"/api/commands/{doomed.Id}?waitSeconds=60", GatewayApp.Json);
        await Eventually.UntilAsync(() => first.Services.GetRequiredService<CommandCompletion>().IsAwaited(doomed.Id), Timeout, "the GET waits");
        Assert.Equal(HttpStatusCode.OK, (await second.Http.DeleteAsync($"/api/commands/{doomed.Id}")).StatusCode);
        Assert.Equal(CommandStatus.Cancelled, (await waitOnFirst.WaitAsync(SignalTimeout))!.Status);
        Assert.Equal(HttpStatusCode.Conflict, (await first.Http.DeleteAsync($"/api/commands/{doomed.Id}")).StatusCode);

        // Queued and waited for in one POST on the first, cancelled on the second: the POST answers 200 Cancelled.
        var posting = first.Http.PostAsJsonAsync("/api/devices/shared-pump/commands?waitSeconds=60", new { command = "REBOOT" }, GatewayApp.Json);
        var pending = await Eventually.UntilAsync(async () =>
            (await second.Http.GetFromJsonAsync<Page<CommandView>>("/api/devices/shared-pump/commands?limit=1", GatewayApp.Json))!.Items
                .FirstOrDefault(c => c.Command == "REBOOT" && c.Id != doomed.Id), Timeout, "the second instance sees the queued command");
        await Eventually.UntilAsync(() => first.Services.GetRequiredService<CommandCompletion>().IsAwaited(pending.Id), Timeout, "the POST waits");
        Assert.Equal(HttpStatusCode.OK, (await second.Http.DeleteAsync($"/api/commands/{pending.Id}")).StatusCode);
        var synchronous = await posting.WaitAsync(SignalTimeout);
        Assert.Equal(HttpStatusCode.OK, synchronous.StatusCode);
        Assert.Equal(CommandStatus.Cancelled, (await synchronous.Content.ReadFromJsonAsync<CommandView>(GatewayApp.Json))!.Status);
    }

    [SkippableFact]
    public async Task ABulkCommandThroughOneInstanceReachesEveryDeviceOnceWhileTheOtherRuns()
    {
        const int Devices = 12;
        await using var pair = await GatewayPair.StartAsync();
        var (_, first, second) = pair;
        var devices = new List<TestMqttClient>();
        for (var d = 0; d < Devices; d++)
        {
            devices.Add(await pair.SignInAsync($"bulk-{d}"));
        }

        var post = await first.Http.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", signedIn = true });
        Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
        var accepted = (await post.Content.ReadFromJsonAsync<BulkCommandAccepted>(GatewayApp.Json))!;
        Assert.Equal(Devices, accepted.Count);
        foreach (var device in devices)
        {
            var request = await device.WaitForMessageAsync(m => m.Topic == TopicRoots.Default.For(device.ClientId).CommandRequest, Timeout);
            var id = Guid.Parse(JsonDocument.Parse(request.Payload).RootElement.GetProperty("uuid").GetString()!);
            await device.PublishAsync(TopicRoots.Default.For(device.ClientId).CommandResponse, GatewayEndToEndTests.ArticleAnswer(device.ClientId, id, "PING", "PONG"));
        }

        await Eventually.UntilAsync(async () =>
            await second.Http.GetFromJsonAsync<BulkCommandSummary>($"/api/commands/bulk/{accepted.BatchId}", GatewayApp.Json) is { } s
            && s.ByStatus.GetValueOrDefault(CommandStatus.Completed) == Devices ? s : null, Timeout, "every answer is counted");
        // A second copy would have been published before its Published mark, long before every answer was stored.
        Assert.All(devices, device => Assert.Single(device.ReceivedMessages, m => m.Topic == TopicRoots.Default.For(device.ClientId).CommandRequest));
    }

    // Callers on both instances queueing at once: each device receives every command once, in the order the gateway
    // stored them, whichever instance queued them and whichever holds the device's lane.
    [SkippableFact]
    public async Task EachDeviceReceivesItsCommandsOnceInQueueOrderWhicheverInstanceQueuedThem()
    {
        string[] ids = ["order-x", "order-y", "order-z"];
        await using var pair = await GatewayPair.StartAsync();
        var (_, first, second) = pair;
        var devices = new List<TestMqttClient>();
        foreach (var id in ids)
        {
            devices.Add(await pair.SignInAsync(id));
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(caller => Task.Run(async () =>
        {
            var through = caller % 2 == 0 ? first : second;
            for (var i = 0; i < 12; i++)
            {
                await through.QueueCommandAsync(ids[(caller + i) % ids.Length], new { command = "STEP", payload = new { step = $"c{caller}-{i}" } });
            }
        })));

        foreach (var device in devices)
        {
            await ReceivedCommands.AssertAllInQueueOrderAsync(first, device, 16, Timeout);
        }
    }

    // A clean stop leaves the group: while one instance is away (a rolling upgrade), the other receives and stores
    // every reading, instead of the broker queueing the stopped one's share for it; back, it takes its share again.
    [SkippableFact]
    public async Task AnInstanceStoppedCleanlyLeavesItsShareToTheOthersUntilItReturns()
    {
        const int Readings = 200;
        await using var pair = await GatewayPair.StartAsync();
        var (broker, first, second) = pair;
        await first.StopAsync();

        await using var device = await TestMqttClient.ConnectAsync(broker, "rolling");
        for (var i = 0; i < Readings; i++)
        {
            await device.PublishAsync(TopicRoots.Default.For("rolling").Data, $$"""{"temp":{{i}},"messageId":"away-{{i}}"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        await second.WaitForDeviceAsync("rolling", d => d.TelemetryCount == Readings, "the instance still running stores every reading", Timeout);
        var firstBefore = pair.StoredByFirst;

        await first.RestartAsync();
        for (var i = 0; i < Readings; i++)
        {
            await device.PublishAsync(TopicRoots.Default.For("rolling").Data, $$"""{"temp":{{i}},"messageId":"back-{{i}}"}""", MqttQualityOfServiceLevel.AtLeastOnce);
        }

        await second.WaitForDeviceAsync("rolling", d => d.TelemetryCount == 2 * Readings, "every reading is stored", Timeout);
        await pair.WaitForStoredCountsAsync(2 * Readings, Timeout);
        Assert.True(pair.StoredByFirst > firstBefore, "the restarted instance takes its share again");
        Assert.Equal(2 * Readings, pair.StoredByFirst + pair.StoredBySecond);
    }

    // One of two instances killed mid-burst (SIGKILL) and started again with the same id: the broker kept queueing its
    // share of the readings in its persistent session (Mosquitto keeps a departed member's share), so nothing is
    // lost, and nothing is stored twice.
    [SkippableFact]
    public async Task AnInstanceKilledMidBurstAndRestartedWithItsIdLosesNothingAndStoresNothingTwice()
    {
        const int Devices = 4, PerDevice = 4000;
        await using var broker = await StartBrokerAsync();
        var database = await TestPostgres.CreateDatabaseAsync();
        var storage = GatewayStorage.Postgres(database);
        using var dataA = new TempDirectory("iotgw-pair-");
        using var dataB = new TempDirectory("iotgw-pair-");
        Dictionary<string, string> Settings(string id) => new()
        {
            ["BROKER"] = broker.Url,
            ["SERVER_ID"] = id,
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["Database__Provider"] = "PostgreSQL",
            ["ConnectionStrings__Gateway"] = database,
            ["Mqtt__SharedSubscriptionGroup"] = Group,
            ["Mqtt__ReconnectMinDelaySeconds"] = "0.1",
            ["Api__Keys__0__Key"] = GatewayApp.ReaderKey,
        };
        var idA = $"gw-a-{Guid.NewGuid():N}";
        await using var b = GatewayProcess.Start(BuiltGateway.Dll, dataB.Path, Settings($"gw-b-{Guid.NewGuid():N}"));
        var a = GatewayProcess.Start(BuiltGateway.Dll, dataA.Path, Settings(idA));
        try
        {
            await Task.WhenAll(a.WaitUntilReadyAsync(Timeout), b.WaitUntilReadyAsync(Timeout));
            var publishing = PublishAsync(broker, Devices, PerDevice);
            await Eventually.UntilAsync(() => Task.FromResult(Rows(storage)), rows => rows > 2000, Timeout, "the instances are storing the burst");
            a.Kill();
            await a.WaitForExitAsync(Timeout);
            Assert.True(Rows(storage) < Devices * PerDevice, "the kill came mid-burst");
            await publishing;
        }
        finally
        {
            await a.DisposeAsync();
        }

        await using var restarted = GatewayProcess.Start(BuiltGateway.Dll, dataA.Path, Settings(idA));
        await restarted.WaitUntilReadyAsync(Timeout);
        await Eventually.UntilAsync(() => Task.FromResult(Rows(storage)), rows => rows >= Devices * PerDevice, TimeSpan.FromSeconds(90),
            "the share the broker kept for the killed instance arrives after its restart");
        for (var d = 0; d < Devices; d++)
        {
            Assert.Equal((PerDevice, PerDevice), StoredReadings.Count(storage, $"burst-{d}"));
        }

        static long Rows(GatewayStorage storage) => storage.Scalar("""SELECT COUNT(*) FROM "Telemetry" """);

        static async Task PublishAsync(MosquittoBroker broker, int devices, int perDevice)
        {
            await using var publisher = await TestMqttClient.ConnectAsync(broker, $"burst-publisher-{Guid.NewGuid():N}");
            using var inflight = new SemaphoreSlim(64);
            await Task.WhenAll(Enumerable.Range(0, devices * perDevice).Select(async n =>
            {
                await inflight.WaitAsync();
                try
                {
                    var (d, i) = (n % devices, n / devices);
                    await publisher.PublishAsync(new MqttApplicationMessageBuilder().WithTopic(TopicRoots.Default.For($"burst-{d}").Data)
                        .WithPayload($$"""{"temp":21.5,"messageId":"burst-{{d}}-{{i}}"}""")
                        .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce).Build());
                }
                finally
                {
                    inflight.Release();
                }
            }));
        }
    }

    // Three instances started at the same moment on an empty database: one migrates, the others wait for it, and
    // all of them come up.
    [SkippableFact]
    public async Task InstancesStartingAtOnceOnAnEmptyDatabaseMigrateItOnce()
    {
        await using var broker = await StartBrokerAsync();
        var database = await TestPostgres.CreateDatabaseAsync();
        var starting = Enumerable.Range(0, 3).Select(i => GatewayApp.StartAsync(broker.Url, s =>
        {
            s["Mqtt:SharedSubscriptionGroup"] = Group;
            s["ConnectionStrings:Gateway"] = database;
        }, provider: DatabaseProvider.PostgreSQL)).ToList();
        var gateways = await Task.WhenAll(starting);
        try
        {
            Assert.All(gateways, g => Assert.False(g.Logs.Contains("Cannot open the database"), string.Join('\n', g.Logs.Lines.Where(l => l.Contains("Cannot open", StringComparison.Ordinal)))));
            var storage = GatewayStorage.Postgres(database);
            // Each migration applied once: as many history rows as the PostgreSQL migrations the gateway has.
            using var model = new global::IotGateway.Data.PostgresDesignTimeContext().CreateDbContext([]);
            var migrations = Microsoft.EntityFrameworkCore.RelationalDatabaseFacadeExtensions.GetMigrations(model.Database).Count();
            Assert.True(migrations >= 2, "the gateway has several PostgreSQL migrations");
            Assert.Equal(migrations, storage.Scalar("""SELECT COUNT(*) FROM "__EFMigrationsHistory" """));
        }
        finally
        {
            foreach (var gateway in gateways)
            {
                await gateway.DisposeAsync();
            }
        }
    }

    internal static async Task<MosquittoBroker> StartBrokerAsync()
    {
        Requires.Mosquitto();
        Requires.PostgreSql();
        return await MosquittoBroker.StartAsync();
    }

    // Two in-process gateways on one new database and one Mosquitto, in one shared-subscription group, each counting the
    // readings it stores; the devices signed in through them go with them.
    private sealed class GatewayPair : IAsyncDisposable
    {
        private readonly CountingIngestStore _countFirst;
        private readonly CountingIngestStore _countSecond;
        private readonly List<TestMqttClient> _devices = [];

        private GatewayPair(MosquittoBroker broker, GatewayApp first, CountingIngestStore countFirst, GatewayApp second, CountingIngestStore countSecond)
        {
            Broker = broker;
            First = first;
            Second = second;
            _countFirst = countFirst;
            _countSecond = countSecond;
        }

        public MosquittoBroker Broker { get; }

        public GatewayApp First { get; }

        public GatewayApp Second { get; }

        public long StoredByFirst => _countFirst.Readings;

        public long StoredBySecond => _countSecond.Readings;

        // A store counts a batch once its commit has returned, a moment after the API can already see the readings.
        public Task WaitForStoredCountsAsync(long expected, TimeSpan timeout) =>
            Eventually.UntilAsync(() => Task.FromResult(StoredByFirst + StoredBySecond), stored => stored >= expected, timeout,
                $"the two instances' stores have counted {expected} readings");

        public static async Task<GatewayPair> StartAsync()
        {
            var broker = await StartBrokerAsync();
            GatewayApp? first = null;
            try
            {
                var countFirst = new CountingIngestStore();
                first = await GatewayApp.StartAsync(broker.Url, s => s["Mqtt:SharedSubscriptionGroup"] = Group, countFirst.Register,
                    provider: DatabaseProvider.PostgreSQL);
                var database = first.PostgresConnectionString;
                var countSecond = new CountingIngestStore();
                var second = await GatewayApp.StartAsync(broker.Url, s =>
                {
                    s["Mqtt:SharedSubscriptionGroup"] = Group;
                    s["ConnectionStrings:Gateway"] = database;
                }, countSecond.Register, provider: DatabaseProvider.PostgreSQL);
                return new GatewayPair(broker, first, countFirst, second, countSecond);
            }
            catch
            {
                if (first is not null)
                {
                    await first.DisposeAsync();
                }

                await broker.DisposeAsync();
                throw;
            }
        }

        public void Deconstruct(out MosquittoBroker broker, out GatewayApp first, out GatewayApp second) =>
            (broker, first, second) = (Broker, First, Second);

        // An article device, signed in and seen so by both instances.
        public async Task<TestMqttClient> SignInAsync(string deviceId)
        {
            var device = await TestMqttClient.ConnectArticleDeviceAsync(Broker.Host, Broker.Port, deviceId);
            _devices.Add(device);
            await device.SubscribeAsync(TopicRoots.Default.For(deviceId).CommandRequest);
            await device.PublishAsync(TopicRoots.Default.For(deviceId).Register, "SIGN_IN", retain: true);
            await First.WaitForDeviceAsync(deviceId, d => d.SignedIn, $"{deviceId} signs in");
            await Second.WaitForDeviceAsync(deviceId, d => d.SignedIn, $"{deviceId} is signed in for the other instance too");
            return device;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var device in _devices)
            {
                await device.DisposeAsync();
            }

            await Second.DisposeAsync();
            await First.DisposeAsync();
            await Broker.DisposeAsync();
        }
    }

    // The real PostgreSQL ingest store, counting the readings this instance received and stored (or found stored).
    private sealed class CountingIngestStore : IIngestStore
    {
        private IIngestStore? _inner;
        private long _readings;

        public long Readings => Interlocked.Read(ref _readings);

        public void Register(IServiceCollection services) =>
            services.AddSingleton<IIngestStore>(sp =>
            {
                _inner = ActivatorUtilities.CreateInstance<PostgresIngestStore>(sp);
                return this;
            });

        public async Task StoreAsync(IngestBatch batch, CancellationToken cancellationToken)
        {
            await _inner!.StoreAsync(batch, cancellationToken);
            Interlocked.Add(ref _readings, batch.Readings.Count);
        }
    }
}
