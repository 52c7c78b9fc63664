using System.Collections.Concurrent;

namespace IotGateway.Bench.Benchmarks;

/// <summary>
/// Command round trip through the gateway (REST POST → outbox → QoS 2 publish → device → QoS 2 answer → stored),
/// beside the limit: a bare MQTT request/response between two clients through the same broker.
/// </summary>
public sealed class RoundTripBenchmark(RepositoryLayout layout)
{
    public const int DefaultDevices = 100;
    public const int DefaultCommands = 10_000;
    public const int DefaultCallers = 16;

    // Not in the main figures (reported on a row of their own): the first requests of either path pay for JIT
    // compilation and cold connection pools. Under this load the gateway's tiered JIT recompiles hot methods for
    // about 8 s after the first command (dotnet-counters: 0.3–0.7 s of JIT time per 2 s, ~5,000 methods, then
    // quiet); 15,000 commands take 10–12 s here. A gateway in service is long past that.
    public const int DefaultWarmUpCommands = 15_000;

    public sealed record Measurement(LatencySummary Latency, double Rate, string? Stages = null);

    /// <summary>The figures a comparison needs beside the printed result: bare MQTT and the gateway's two forms.</summary>
    public sealed record Outcome(BenchResult Result, Measurement Bare, Measurement PostThenGet, Measurement Synchronous);

    public async Task<BenchResult> RunAsync(int devices, int commands, int callers, int warmUpCommands, string database, CancellationToken cancellationToken) =>
        (await MeasureAsync(devices, commands, callers, warmUpCommands, database, cancellationToken)).Result;

    // "sqlite" (the default) or "postgresql": the gateway's database (PostgreSQL: a durable cluster of the bench's own).
    public async Task<Outcome> MeasureAsync(int devices, int commands, int callers, int warmUpCommands, string database, CancellationToken cancellationToken)
    {
        var postgres = database.Equals("postgresql", StringComparison.OrdinalIgnoreCase);
        if (!postgres && !database.Equals("sqlite", StringComparison.OrdinalIgnoreCase))
        {
            throw new UsageException($"--database is sqlite or postgresql, not '{database}'.");
        }

        await using var postgresServer = postgres ? await PostgresCluster.StartAsync(durable: true, cancellationToken) : null;
        var connectionString = postgresServer is null ? null : await postgresServer.CreateDatabaseAsync("roundtrip", cancellationToken);
        await using var broker = await BenchBroker.StartAsync(cancellationToken);

        // The bare limit first, while nothing else uses the broker or the CPU.
        var bare = await MeasureBareMqttAsync(broker, commands, callers, warmUpCommands, cancellationToken);

        using var data = new TempDirectory("iotgw-bench-roundtrip-");
        await using var gateway = BenchGateway.Start(layout, broker, "bench-roundtrip", data.Path, connectionString);
        await gateway.WaitUntilReadyAsync(TimeSpan.FromSeconds(60), cancellationToken);
        using var api = gateway.Api();

        var deviceIds = Enumerable.Range(0, devices).Select(i => $"rt-dev-{i:D4}").ToArray();
        await using var fleet = await DeviceFleet.ConnectAsync(broker, deviceIds, concurrency: 50, cancellationToken);
        await Eventually.UntilAsync(() => api.CountSignedInDevicesAsync(cancellationToken), count => count >= devices, TimeSpan.FromSeconds(60),
            $"the gateway lists all {devices} devices as signed in", cancellationToken, TimeSpan.FromMilliseconds(50));

        // The gateway's own CPU time (user + system, all threads) per command, from /proc: what each command costs it.
        async Task<(Measurement Measured, double CpuMs)> MeasureWithCpuAsync(int count, bool synchronous)
        {
            var before = ProcFs.ReadCpuTime(gateway.ProcessId);
            var m = await SendCommandsThroughGatewayAsync(api, deviceIds, count, callers, synchronous, cancellationToken);
            return (m, (ProcFs.ReadCpuTime(gateway.ProcessId) - before).TotalMilliseconds / count);
        }

        var warmUp = await SendCommandsThroughGatewayAsync(api, deviceIds, warmUpCommands, callers, synchronous: false, cancellationToken);
        var (measured, measuredCpu) = await MeasureWithCpuAsync(commands, synchronous: false);
        // The synchronous form runs the same code after the POST, so a short warm-up of its own is enough.
        var synchronousWarmUp = Math.Min(warmUpCommands, 2_000);
        await SendCommandsThroughGatewayAsync(api, deviceIds, synchronousWarmUp, callers, synchronous: true, cancellationToken);
        var (synchronous, synchronousCpu) = await MeasureWithCpuAsync(commands, synchronous: true);
        gateway.ThrowIfExited("during the round trips");

        var rows = new List<ResultRow>();
        foreach (var (name, m, cpu) in new[] { ("POST, then GET …?waitSeconds", measured, measuredCpu), ("one POST …?waitSeconds", synchronous, synchronousCpu) })
        {
            var p50 = m.Latency.P50Ms / bare.Latency.P50Ms;
            var p99 = m.Latency.P99Ms / bare.Latency.P99Ms;
            var rate = m.Rate / bare.Rate;
            rows.Add(new($"gateway round trip p50 ({name})", Report.Milliseconds(m.Latency.P50Ms), $"bare MQTT {Report.Milliseconds(bare.Latency.P50Ms)}; {p50:0.0}×; {Report.Target("≤ 2×", p50 <= 2)}"));
            rows.Add(new($"… p99 / max", $"{Report.Milliseconds(m.Latency.P99Ms)} / {Report.Milliseconds(m.Latency.MaxMs)}", $"bare MQTT {Report.Milliseconds(bare.Latency.P99Ms)} / {Report.Milliseconds(bare.Latency.MaxMs)}; {p99:0.0}×; {Report.Target("≤ 2×", p99 <= 2)}"));
            rows.Add(new($"… commands completed per second", Report.Rate(m.Rate, "commands"), $"bare MQTT {Report.Rate(bare.Rate, "requests")}; {rate:0.00}×; {Report.Target("≥ 0.5×", rate >= 0.5)}"));
            rows.Add(new($"… stages (medians)", m.Stages ?? ""));
            rows.Add(new($"… the gateway's CPU time per command (all threads)", Report.Milliseconds(cpu),
                $"the most {Environment.ProcessorCount} cores could run with nothing else on them: {Report.Rate(Environment.ProcessorCount * 1000 / cpu, "commands")}"));
        }

        rows.Add(new($"gateway warm-up, the first {Report.Count(warmUpCommands)} commands after start (POST, then GET): p50 / p99, rate",
            $"{Report.Milliseconds(warmUp.Latency.P50Ms)} / {Report.Milliseconds(warmUp.Latency.P99Ms)}, {Report.Rate(warmUp.Rate, "commands")}", "not in the figures above"));
        var notes = new List<string>
        {
            $"{devices} always-online devices (in-process MQTTnet clients, persistent sessions, QoS 2 both ways), {Report.Count(commands)} PING commands from {callers} concurrent HTTP callers, round-robin over the devices; {Report.Count(warmUpCommands)} warm-up commands first (on both paths), not in the main figures; then {Report.Count(synchronousWarmUp)} synchronous ones before the synchronous figures.",
            "POST, then GET = from just before the POST until GET /api/commands/{id}?waitSeconds=30 returns it Completed; one POST = POST /api/devices/{id}/commands?waitSeconds=30 answering 200 with it Completed. Each caller then sends its next command (a closed loop, like the bare measurement); rate = commands / wall time.",
            $"Bare MQTT = one requester publishing QoS 2 requests to one responder that answers QoS 2 on another topic, same count and concurrency ({callers} outstanding), timed from before the publish to the answer's arrival.",
            $"The gateway: {layout.Description}.",
        };
        if (fleet.AnswerFailures > 0)
        {
            notes.Add($"DEVICE ANSWER FAILURES: {fleet.AnswerFailures}, first: {fleet.FirstAnswerFailure}");
        }

        var expectedCommands = warmUpCommands + commands + synchronousWarmUp + commands;
        if (fleet.CommandsReceived != expectedCommands)
        {
            notes.Add($"DEVICES RECEIVED {fleet.CommandsReceived} COMMANDS for {expectedCommands} queued (duplicates or losses).");
        }

        notes.Add(postgres
            ? "The gateway's database: PostgreSQL (Debian's package, a cluster of the bench's own on loopback, fsync and synchronous_commit on)."
            : "The gateway's database: SQLite (a file in a temp folder).");
        var result = new BenchResult(postgres ? "roundtrip-postgresql" : "roundtrip",
            $"roundtrip ({(postgres ? "PostgreSQL" : "SQLite")}): {Report.Count(commands)} commands to {devices} online devices, {callers} callers", rows, notes);
        return new Outcome(result, bare, measured, synchronous);
    }

    /// <summary>
    /// Each caller queues a command and waits for it to be Completed (GET …?waitSeconds, or in the POST itself), then sends the next: the
    /// same closed loop, with the same number of outstanding requests, as the bare MQTT measurement.
    /// </summary>
    private static async Task<Measurement> SendCommandsThroughGatewayAsync(GatewayApi api, string[] deviceIds, int commands, int callers, bool synchronous,
        CancellationToken cancellationToken)
    {
        var states = new CommandState[commands];
        var postedAt = new DateTimeOffset[commands];
        var (latencies, rate) = await RunClosedLoopAsync(commands, callers, async (i, ct) =>
        {
            postedAt[i] = DateTimeOffset.UtcNow;
            var device = deviceIds[i % deviceIds.Length];
            var state = synchronous
                ? await api.QueueCommandAndWaitAsync(device, "PING", TimeSpan.FromSeconds(30), ct)
                : await api.WaitForCommandAsync(await api.QueueCommandAsync(device, "PING", ct), TimeSpan.FromSeconds(30), ct);
            if (state is not { Status: "Completed", AnsweredAt: not null })
            {
                throw new BenchFailure($"Command {state.Id} is {state.Status} after waiting 30 s for it (created {state.CreatedAt:O}, published {state.PublishedAt:O}).");
            }

            states[i] = state;
        }, cancellationToken);
        return new Measurement(LatencySummary.Of(latencies), rate, Stages(states, postedAt, latencies));
    }

    /// <summary>
    /// Runs <paramref name="count"/> requests from <paramref name="callers"/> concurrent callers, each sending its next
    /// request when its last one is answered; times each request and returns the rate over the wall time. The gateway
    /// and the bare MQTT measurement both run through here, so they are timed the same way.
    /// </summary>
    private static async Task<(TimeSpan[] Latencies, double Rate)> RunClosedLoopAsync(int count, int callers,
        Func<int, CancellationToken, Task> request, CancellationToken cancellationToken)
    {
        var latencies = new TimeSpan[count];
        var next = -1;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60 + count / 50));
        var wall = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                var started = Stopwatch.GetTimestamp();
                await request(i, timeout.Token);
                latencies[i] = Stopwatch.GetElapsedTime(started);
            }
        }));
        return (latencies, count / wall.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Where the time goes, from the command's own timestamps (medians): the POST until the row is written, the
    /// row until the broker completed the QoS 2 publish (PUBCOMP; the device already has it), from then until the
    /// answer is stored, and until the waiting caller has it.
    /// </summary>
    private static string Stages(CommandState[] states, DateTimeOffset[] postedAt, TimeSpan[] latencies)
    {
        static string Median(IEnumerable<TimeSpan> values) =>
            values.ToArray() is { Length: > 0 } all ? Report.Milliseconds(LatencySummary.Of(all).P50Ms) : "n/a";

        var withPublished = states.Where(s => s.PublishedAt is not null).ToArray();
        return $"POST → created {Median(states.Select((s, i) => s.CreatedAt - postedAt[i]))}, "
            + $"created → published {Median(withPublished.Select(s => s.PublishedAt!.Value - s.CreatedAt))}, "
            + $"published → answer stored {Median(withPublished.Select(s => s.AnsweredAt!.Value - s.PublishedAt!.Value))}, "
            + $"stored → caller has it {Median(states.Select((s, i) => postedAt[i] + latencies[i] - s.AnsweredAt!.Value))}";
    }

    /// <summary>The limit: request/response between two MQTTnet clients through the broker, QoS 2 both ways.</summary>
    private static async Task<Measurement> MeasureBareMqttAsync(MosquittoBroker broker, int requests, int callers, int warmUpRequests, CancellationToken cancellationToken)
    {
        const string RequestTopic = "bench/rr/req";
        const string ResponseTopic = "bench/rr/resp";

        using var responder = MqttClients.Factory.CreateMqttClient();
        responder.ApplicationMessageReceivedAsync += e =>
        {
            // As a device does: parse the request, answer at once without holding the handler.
            var answer = PingResponder.Answer("bare-responder", e.ApplicationMessage.Payload);
            if (answer is not null)
            {
                _ = responder.PublishAsync(MqttClients.Message(ResponseTopic, answer, MqttQualityOfServiceLevel.ExactlyOnce), CancellationToken.None);
            }

            return Task.CompletedTask;
        };
        await MqttClients.ConnectAsync(responder, MqttClients.Options(broker, "bench-responder").WithCleanStart(true).Build(), cancellationToken);
        await MqttClients.SubscribeAsync(responder, RequestTopic, MqttQualityOfServiceLevel.ExactlyOnce, cancellationToken);

        var waiting = new ConcurrentDictionary<string, TaskCompletionSource>();
        using var requester = MqttClients.Factory.CreateMqttClient();
        requester.ApplicationMessageReceivedAsync += e =>
        {
            if (ReadUuid(e.ApplicationMessage) is { } uuid && waiting.TryRemove(uuid, out var answered))
            {
                answered.TrySetResult();
            }

            return Task.CompletedTask;
        };
        await MqttClients.ConnectAsync(requester, MqttClients.Options(broker, "bench-requester").WithCleanStart(true).Build(), cancellationToken);
        await MqttClients.SubscribeAsync(requester, ResponseTopic, MqttQualityOfServiceLevel.ExactlyOnce, cancellationToken);

        async Task<Measurement> RunAsync(int count)
        {
            var (latencies, rate) = await RunClosedLoopAsync(count, callers, async (_, ct) =>
            {
                var uuid = Guid.NewGuid().ToString();
                var answered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                waiting[uuid] = answered;
                var request = IotGateway.Protocol.CommandRequest.ToJson(uuid, "PING", null);
                await MqttClients.PublishAsync(requester, MqttClients.Message(RequestTopic, request, MqttQualityOfServiceLevel.ExactlyOnce), ct);
                await answered.Task.WaitAsync(ct);
            }, cancellationToken);
            return new Measurement(LatencySummary.Of(latencies), rate);
        }

        try
        {
            await RunAsync(warmUpRequests);
            return await RunAsync(requests);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BenchFailure($"The bare MQTT request/response did not finish in time ({waiting.Count} requests unanswered).");
        }
    }

    private static string? ReadUuid(MqttApplicationMessage message)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(message.Payload);
            return document.RootElement.TryGetProperty("uuid", out var uuid) ? uuid.GetString() : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
