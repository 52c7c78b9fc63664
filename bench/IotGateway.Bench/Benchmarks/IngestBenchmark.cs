using IotGateway.Protocol;

namespace IotGateway.Bench.Benchmarks;

/// <summary>
/// The backlog drain: N QoS 1 readings wait in the broker for four persistent sessions: the gateway's,
/// mosquitto_sub's and two bare MQTTnet clients'. mosquitto_sub, which stores nothing, shows how fast the broker can
/// hand the backlog over (the limit); the bare MQTTnet clients show what the MQTT library itself manages in a fresh
/// .NET process, over its own channel and over the gateway's BufferedMqttChannel; the gateway has to store every
/// reading in SQLite before it acknowledges it.
/// </summary>
public sealed class IngestBenchmark(RepositoryLayout layout)
{
    public const int DefaultReadings = 100_000;
    private const string GatewayClientId = "bench-gateway";
    private const string PostgresGatewayClientId = "bench-gateway-pg";
    private const string SubscriberClientId = "bench-sub";
    private const string LibraryClientId = "bench-mqttnet";
    private const string BufferedLibraryClientId = "bench-mqttnet-buffered";
    internal const string DataTopicFilter = $"{TopicRoots.DefaultData}/+";
    private const int PublishesInFlight = 64;
    private const int DeviceCount = 100;
    private static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(30);

    public const int DefaultRounds = 3;

    /// <summary>
    /// Runs the whole comparison <paramref name="rounds"/> times (a fresh Mosquitto and backlog each) and reports the
    /// middle round by ratio: on a shared 2-core machine one round's ratio swung 0.47-1.08.
    /// </summary>
    public async Task<BenchResult> RunAsync(int readings, int rounds, CancellationToken cancellationToken)
    {
        var results = new List<IngestRound>();
        await using var postgres = await PostgresCluster.StartAsync(durable: true, cancellationToken);
        for (var round = 1; round <= rounds; round++)
        {
            Console.Error.WriteLine($"ingest round {round} of {rounds} …");
            results.Add(await RunRoundAsync(readings, await postgres.CreateDatabaseAsync($"ingest_{round}", cancellationToken), cancellationToken));
        }

        var middle = results.OrderBy(r => r.Ratio).ElementAt(results.Count / 2);
        var (publishTime, subscriber, library, bufferedLibrary, gateway, onPostgres) = middle;
        var postgresDrainRate = readings / onPostgres.Drain.TotalSeconds;
        var subscriberRate = readings / subscriber.FirstToLast.TotalSeconds;
        var libraryRate = readings / library.FirstToLast.TotalSeconds;
        var bufferedLibraryRate = readings / bufferedLibrary.FirstToLast.TotalSeconds;
        var gatewayTotalRate = readings / gateway.Total.TotalSeconds;
        var gatewayDrainRate = readings / gateway.Drain.TotalSeconds;
        var ratio = middle.Ratio;
        var which = rounds == 1 ? "" : $" (the middle of {rounds} rounds by ratio)";

        var rows = new List<ResultRow>
        {
            new("backlog published (QoS 1, 64 in flight, one MQTTnet client)", $"{Report.Seconds(publishTime)} ({Report.Rate(readings / publishTime.TotalSeconds, "msg")})"),
            new("mosquitto_sub drains the backlog (process start → exit)", $"{Report.Seconds(subscriber.Total)} ({Report.Rate(subscriberRate, "readings")})", "the limit"),
            new("MQTTnet 5 client alone (fresh process, acks each message, stores nothing): first → last message",
                $"{Report.Seconds(library.FirstToLast)} ({Report.Rate(libraryRate, "readings")}, {libraryRate / subscriberRate:0.00} of mosquitto_sub; process start → exit {Report.Seconds(library.Total)})",
                "the MQTT library's own limit"),
            new("the same MQTTnet client over the gateway's BufferedMqttChannel: first → last message",
                $"{Report.Seconds(bufferedLibrary.FirstToLast)} ({Report.Rate(bufferedLibraryRate, "readings")}, {bufferedLibraryRate / subscriberRate:0.00} of mosquitto_sub)",
                "the library as the gateway runs it"),
            new("gateway: process start → /health/ready", Report.Seconds(gateway.Ready)),
            new("gateway: process start → first readings stored", $"{Report.Seconds(gateway.FirstStored)} ({Report.Count(gateway.FirstStoredCount)} readings)"),
            new("gateway: process start → all readings stored", $"{Report.Seconds(gateway.Total)} ({Report.Rate(gatewayTotalRate, "readings")})"),
            new("gateway drain: first reading received → all stored", $"{Report.Seconds(gateway.Drain)} ({Report.Rate(gatewayDrainRate, "readings")})"),
            new($"gateway drain rate / mosquitto_sub rate{which}", $"{ratio:0.00}", Report.Target("≥ 0.7", ratio >= 0.7)),
            new("gateway drain rate / mosquitto_sub rate, each round (mosquitto_sub's drain time)",
                string.Join(", ", results.Select(r => $"{r.Ratio:0.00} ({Report.Seconds(r.Subscriber.Total)})"))),
            new("gateway drain rate / MQTTnet-alone rate", $"{gatewayDrainRate / libraryRate:0.00}"),
            new("gateway on PostgreSQL: process start → /health/ready", Report.Seconds(onPostgres.Ready)),
            new("gateway on PostgreSQL drain: first reading received → all stored",
                $"{Report.Seconds(onPostgres.Drain)} ({Report.Rate(postgresDrainRate, "readings")}, {postgresDrainRate / subscriberRate:0.00} of mosquitto_sub, {postgresDrainRate / gatewayDrainRate:0.00} of SQLite)"),
            new("gateway on PostgreSQL drain rate / mosquitto_sub rate, each round",
                string.Join(", ", results.Select(r => $"{r.Subscriber.FirstToLast / r.OnPostgres.Drain:0.00}"))),
            new("gateway total rate / mosquitto_sub rate (start-up included)", $"{gatewayTotalRate / subscriberRate:0.00}"),
        };
        var notes = new List<string>
        {
            $"{Report.Count(readings)} readings of ~110 bytes JSON on iot/data/dev-0..dev-{DeviceCount - 1}, each with a messageId; the gateway starts on an empty database.",
            "The gateway drains the same backlog twice, from two sessions: on SQLite (a file in a temp folder), then on PostgreSQL (Debian's package, a cluster of the bench's own on loopback, fsync and synchronous_commit on, a new database each round).",
            "Stored readings are read from the gateway's SQLite file (or PostgreSQL database) (sum of Devices.TelemetryCount) every 20 ms; the gateway's drain runs from the earliest ReceivedAt it stored to the poll that saw the last reading (so up to 20 ms too long). The MQTTnet client times its own first and last message; mosquitto_sub is timed from process start to exit.",
            $"Figures above the per-round row are those of one round{which}; every round starts its own Mosquitto, backlog and gateway.",
        };
        notes.AddRange(results.SelectMany(r => r.Gateway.Notes).Distinct());
        return new BenchResult("ingest", $"ingest: drain a backlog of {Report.Count(readings)} QoS 1 readings", rows, notes);
    }

    private sealed record IngestRound(TimeSpan PublishTime, Drain Subscriber, Drain Library, Drain BufferedLibrary, GatewayDrain Gateway, GatewayDrain OnPostgres)
    {
        public double Ratio => Subscriber.FirstToLast / Gateway.Drain;
    }

    private async Task<IngestRound> RunRoundAsync(int readings, string postgres, CancellationToken cancellationToken)
    {
        await using var broker = await BenchBroker.StartAsync(cancellationToken);

        await MqttnetDrain.CreateSessionAsync(broker, GatewayClientId, DataTopicFilter, cancellationToken);
        await MqttnetDrain.CreateSessionAsync(broker, PostgresGatewayClientId, DataTopicFilter, cancellationToken);
        await CreateSubscriberSessionAsync(broker, cancellationToken);
        await MqttnetDrain.CreateSessionAsync(broker, LibraryClientId, DataTopicFilter, cancellationToken);
        await MqttnetDrain.CreateSessionAsync(broker, BufferedLibraryClientId, DataTopicFilter, cancellationToken);
        var publishTime = await PublishBacklogAsync(broker, readings, cancellationToken);

        // The gateway and the MQTTnet client are timed from the first message received to the last one done with
        // (stored, acknowledged), so their .NET start-up stays out of the rates; mosquitto_sub's start is a few ms.
        var subscriber = await DrainWithMosquittoSubAsync(broker, readings, cancellationToken);
        var library = await DrainWithMqttnetAloneAsync(broker, LibraryClientId, readings, buffered: false, cancellationToken);
        var bufferedLibrary = await DrainWithMqttnetAloneAsync(broker, BufferedLibraryClientId, readings, buffered: true, cancellationToken);
        var gateway = await DrainWithGatewayAsync(broker, GatewayClientId, readings, null, cancellationToken);
        var onPostgres = await DrainWithGatewayAsync(broker, PostgresGatewayClientId, readings, postgres, cancellationToken);
        return new IngestRound(publishTime, subscriber, library, bufferedLibrary, gateway, onPostgres);
    }

    /// <summary>mosquitto_sub's persistent session (-c): subscribe, exit once the broker acknowledged it (-E).</summary>
    internal static async Task CreateSubscriberSessionAsync(MosquittoBroker broker, CancellationToken cancellationToken, string clientId = SubscriberClientId)
    {
        await using var sub = ChildProcess.Start("mosquitto_sub", BenchBroker.ClientTool("mosquitto_sub"),
            [.. SubscriberArguments(broker, clientId), "-E"], Path.GetTempPath());
        if (!await sub.WaitForExitAsync(TimeSpan.FromSeconds(10), cancellationToken) || sub.ExitCode != 0)
        {
            throw new BenchFailure($"mosquitto_sub could not create its persistent session. Its output:\n{sub.OutputTail()}");
        }
    }

    private static string[] SubscriberArguments(MosquittoBroker broker, string clientId = SubscriberClientId) =>
        ["-h", broker.Host, "-p", broker.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-i", clientId, "-c", "-q", "1", "-t", DataTopicFilter];

    internal static async Task<TimeSpan> PublishBacklogAsync(MosquittoBroker broker, int readings, CancellationToken cancellationToken)
    {
        using var client = MqttClients.Factory.CreateMqttClient();
        await MqttClients.ConnectAsync(client, MqttClients.Options(broker, "bench-publisher").WithCleanStart(true).Build(), cancellationToken);
        var topics = Enumerable.Range(0, DeviceCount).Select(d => TopicRoots.Default.For($"dev-{d}").Data).ToArray();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60 + readings / 1000));

        var next = -1;
        var elapsed = Stopwatch.StartNew();
        // A fixed set of workers, each with one publish outstanding: 64 in flight, as the client leaves that to us.
        var workers = Enumerable.Range(0, PublishesInFlight).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < readings; i = Interlocked.Increment(ref next))
            {
                var device = i % DeviceCount;
                var payload = Encoding.UTF8.GetBytes(
                    $$"""{"deviceId":"dev-{{device}}","messageType":"DATA","temp":21.5,"lat":48.01,"lng":-88.62,"messageId":"m-{{i}}"}""");
                await MqttClients.PublishAsync(client, MqttClients.Message(topics[device], payload, MqttQualityOfServiceLevel.AtLeastOnce), timeout.Token);
            }
        });
        try
        {
            await Task.WhenAll(workers);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BenchFailure($"Publishing the backlog took longer than {TimeSpan.FromSeconds(60 + readings / 1000).TotalSeconds} s.");
        }

        var time = elapsed.Elapsed;
        await client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().Build(), cancellationToken);
        return time;
    }

    /// <summary>
    /// The limit: mosquitto_sub resumes its session and exits after N messages, printing them to /dev/null. Timed
    /// from process start to exit: a C program's start and connect take a few milliseconds, and asking it for a
    /// timestamp per message (-F %U) halved its rate here, which would measure the printing, not the broker.
    /// </summary>
    internal static async Task<Drain> DrainWithMosquittoSubAsync(MosquittoBroker broker, int readings, CancellationToken cancellationToken,
        string clientId = SubscriberClientId, bool measureCpu = false)
    {
        // Through `sh -c 'exec …'` so that its stdout is /dev/null itself, not a pipe we would have to drain; exec
        // keeps one process, so the timing is mosquitto_sub's own (plus a shell start of about a millisecond).
        // With measureCpu, the shell stays to report its child's CPU time (`times`) instead of exec'ing it.
        var run = $"{BenchBroker.ClientTool("mosquitto_sub")} {string.Join(' ', SubscriberArguments(broker, clientId).Select(Quote))} -C {readings} > /dev/null";
        var command = measureCpu ? $"{run}; status=$?; times; exit $status" : $"exec {run}";
        await using var sub = ChildProcess.Start("mosquitto_sub", "/bin/sh", ["-c", command], Path.GetTempPath());
        var timeout = TimeSpan.FromSeconds(60 + readings / 5000);
        if (!await sub.WaitForExitAsync(timeout, cancellationToken))
        {
            throw new BenchFailure($"mosquitto_sub did not receive {Report.Count(readings)} messages within {timeout.TotalSeconds} s. Its output:\n{sub.OutputTail()}");
        }

        var time = sub.SinceStart.Elapsed;
        if (sub.ExitCode != 0)
        {
            throw new BenchFailure($"mosquitto_sub exited with code {sub.ExitCode}. Its output:\n{sub.OutputTail()}");
        }

        return new Drain(time, time) { Cpu = measureCpu ? ShellTimes.ChildrenCpuTime(sub.OutputTail()) : null };
    }

    /// <summary>A reference drain: process start → exit, and its first → last message.</summary>
    internal sealed record Drain(TimeSpan Total, TimeSpan FirstToLast)
    {
        public TimeSpan? Cpu { get; init; }
    }

    /// <summary>The library's limit: this bench binary as a fresh process that only receives and acknowledges.</summary>
    private static async Task<Drain> DrainWithMqttnetAloneAsync(MosquittoBroker broker, string clientId, int readings, bool buffered,
        CancellationToken cancellationToken)
    {
        var self = Environment.ProcessPath ?? throw new BenchFailure("Cannot find the bench's own executable to start the MQTTnet drain.");
        string[] arguments = [MqttnetDrain.Subcommand, broker.Host, broker.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), clientId,
            readings.ToString(System.Globalization.CultureInfo.InvariantCulture), .. buffered ? [MqttnetDrain.BufferedOption] : Array.Empty<string>()];
        // `dotnet run` starts the apphost; a bench started as `dotnet IotGateway.Bench.dll` runs the dll the same way.
        IEnumerable<string> args = Path.GetFileNameWithoutExtension(self) == "dotnet"
            ? [typeof(MqttnetDrain).Assembly.Location, .. arguments]
            : arguments;
        // The gateway runs with tiered PGO off (its csproj); so does its reference.
        await using var drain = ChildProcess.Start("mqttnet-drain", self, args, Path.GetTempPath(),
            new Dictionary<string, string?> { ["DOTNET_TieredPGO"] = "0" });
        var timeout = TimeSpan.FromSeconds(90 + readings / 5000);
        if (!await drain.WaitForExitAsync(timeout, cancellationToken) || drain.ExitCode != 0)
        {
            throw new BenchFailure($"The MQTTnet drain did not finish in {timeout.TotalSeconds} s. Its output:\n{drain.OutputTail()}");
        }

        var total = drain.SinceStart.Elapsed;
        var line = drain.OutputTail().Split('\n').LastOrDefault(l => l.StartsWith(MqttnetDrain.DrainLinePrefix, StringComparison.Ordinal))
            ?? throw new BenchFailure($"The MQTTnet drain did not report its time. Its output:\n{drain.OutputTail()}");
        var ms = double.Parse(line[MqttnetDrain.DrainLinePrefix.Length..], System.Globalization.CultureInfo.InvariantCulture);
        return new Drain(total, TimeSpan.FromMilliseconds(ms));
    }

    internal sealed record GatewayDrain(TimeSpan Ready, TimeSpan FirstStored, long FirstStoredCount, TimeSpan Total, TimeSpan Drain, IReadOnlyList<string> Notes)
    {
        // The gateway's CPU time (all threads) from its start until ready, and until all were stored.
        public TimeSpan? CpuAtReady { get; init; }

        public TimeSpan CpuAtAllStored { get; init; }
    }

    /// <summary>Starts the gateway on an empty database and times it until every reading is stored.</summary>
    internal async Task<GatewayDrain> DrainWithGatewayAsync(MosquittoBroker broker, string clientId, int readings, string? postgres,
        CancellationToken cancellationToken)
    {
        using var data = new TempDirectory("iotgw-bench-ingest-");
        await using var gateway = BenchGateway.Start(layout, broker, clientId, data.Path, postgres);
        var readyTask = gateway.WaitUntilReadyAsync(TimeSpan.FromSeconds(60), cancellationToken);

        var timeout = TimeSpan.FromSeconds(60 + readings / 1000);
        long stored = 0;
        (TimeSpan At, long Count)? firstStored = null;
        DateTimeOffset lastStoredAt;
        TimeSpan cpuAtAllStored;
        var lastProgress = Stopwatch.StartNew();
        while (true)
        {
            var now = GatewayDatabase.TryReadStoredReadings(gateway.DatabasePath);
            if (now > 0 && firstStored is null)
            {
                firstStored = (gateway.Uptime, now.Value);
            }

            if (now >= readings)
            {
                lastStoredAt = DateTimeOffset.UtcNow;
                cpuAtAllStored = ProcFs.ReadCpuTime(gateway.ProcessId);
                break;
            }

            if (now > stored)
            {
                stored = now.Value;
                lastProgress.Restart();
            }

            gateway.ThrowIfExited($"after storing {Report.Count(stored)} of {Report.Count(readings)} readings");
            if (readyTask.IsFaulted)
            {
                await readyTask; // its failure says why (not ready, exited)
            }

            if (stored > 0 && lastProgress.Elapsed > StallTimeout)
            {
                throw new BenchFailure($"The gateway stalled: {Report.Count(stored)} of {Report.Count(readings)} readings stored, none more in {StallTimeout.TotalSeconds} s. Its output:\n{gateway.OutputTail()}");
            }

            if (gateway.Uptime > timeout)
            {
                throw new BenchFailure($"The gateway stored {Report.Count(stored)} of {Report.Count(readings)} readings in {timeout.TotalSeconds} s. Its output:\n{gateway.OutputTail()}");
            }

            await Task.Delay(20, cancellationToken);
        }

        var total = gateway.Uptime;
        var ready = await readyTask;

        // Every reading exactly once: the counters and the rows agree, and nothing was stored twice.
        var notes = new List<string>();
        var counted = GatewayDatabase.TryReadStoredReadings(gateway.DatabasePath);
        var rows = GatewayDatabase.Scalar(gateway.DatabasePath, """SELECT COUNT(*) FROM "Telemetry" """);
        if (counted != readings || rows != readings)
        {
            notes.Add($"GATEWAY COUNT MISMATCH: published {readings}, Devices.TelemetryCount sums to {counted}, Telemetry has {rows} rows.");
        }

        if (firstStored!.Value.Count >= readings)
        {
            notes.Add("The first poll already saw every reading stored: the backlog is too small to time the drain; use more --readings.");
        }

        // ReceivedAt is stamped on receipt, in UTC ticks, by the same machine's clock as lastStoredAt.
        var firstReceivedAt = new DateTimeOffset(GatewayDatabase.Scalar(gateway.DatabasePath, """SELECT MIN("ReceivedAt") FROM "Telemetry" """), TimeSpan.Zero);
        return new GatewayDrain(ready, firstStored.Value.At, firstStored.Value.Count, total, lastStoredAt - firstReceivedAt, notes)
        {
            CpuAtReady = gateway.CpuAtReady,
            CpuAtAllStored = cpuAtAllStored,
        };
    }

    private static string Quote(string argument) => $"'{argument.Replace("'", "'\\''", StringComparison.Ordinal)}'";
}
