namespace IotGateway.Bench.Benchmarks;

/// <summary>
/// A large always-online fleet: how long until the gateway knows every device is signed in, what the gateway
/// costs in memory and idle CPU while holding it, and how fast one bulk PING reaches every device and every
/// answer is stored.
/// </summary>
public sealed class FleetBenchmark(RepositoryLayout layout)
{
    public const int DefaultDevices = 10_000;
    private const int ConnectConcurrency = 200;

    // Sockets the bench needs beyond one per device: the gateway API, stdio pipes, the runtime's own.
    private const int SpareFileDescriptors = 512;
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan StallTimeout = TimeSpan.FromSeconds(30);

    private const string SignedInCount = """SELECT COUNT(*) FROM "Devices" WHERE "SignedIn" = 1""";

    /// <param name="devices">How many devices.</param>
    /// <param name="transport">"mqtt" (through Mosquitto) or "tcp" (the article's plain TCP, to the gateway's listener).</param>
    /// <param name="cancellationToken">Stops the run.</param>
    public async Task<BenchResult> RunAsync(int devices, string transport, CancellationToken cancellationToken)
    {
        var tcp = transport switch
        {
            "mqtt" => false,
            "tcp" => true,
            _ => throw new UsageException($"--transport must be mqtt or tcp, not '{transport}'."),
        };
        CheckOpenFileLimit(devices);

        await using var broker = await BenchBroker.StartAsync(cancellationToken);
        using var data = new TempDirectory("iotgw-bench-fleet-");
        var tcpPort = FreePort.OnLoopback();
        await using var gateway = BenchGateway.Start(layout, broker, "bench-fleet", data.Path,
            settings: tcp ? new Dictionary<string, string> { ["Tcp__Port"] = tcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture) } : null);
        await gateway.WaitUntilReadyAsync(TimeSpan.FromSeconds(60), cancellationToken);
        using var api = gateway.Api();

        // Sign-in: from the first device connecting until the gateway lists them all.
        var deviceIds = Enumerable.Range(0, devices).Select(i => $"fleet-{i:D5}").ToArray();
        var signIn = Stopwatch.StartNew();
        await using BenchFleet fleet = tcp
            ? await TcpDeviceFleet.ConnectAsync(tcpPort, deviceIds, ConnectConcurrency, cancellationToken)
            : await DeviceFleet.ConnectAsync(broker, deviceIds, ConnectConcurrency, cancellationToken);
        var connected = signIn.Elapsed;
        // Counted from the gateway's SQLite file, so the polling does not load the gateway it is timing; the API is
        // asked once at the end.
        await Eventually.UntilAsync(() => Task.FromResult(GatewayDatabase.Scalar(gateway.DatabasePath, SignedInCount)), count => count >= devices,
            TimeSpan.FromSeconds(60 + devices / 100), $"the gateway stores all {devices} devices as signed in", cancellationToken, TimeSpan.FromMilliseconds(200));
        var allSignedIn = signIn.Elapsed;
        gateway.ThrowIfExited("while the devices signed in");
        var listed = await api.CountSignedInDevicesAsync(cancellationToken);
        if (listed != devices)
        {
            throw new BenchFailure($"The database has {devices} devices signed in but GET /api/devices?signedIn=true lists {listed}.");
        }

        // Idle: the fleet is connected and quiet; what does holding it cost the gateway? Two windows back to back:
        // the first still has the tail of the sign-in burst (JIT tiering, GC), the second is the steady state.
        var idleCpuPercent = await MeasureCpuPercentAsync(gateway.ProcessId, cancellationToken);
        var steadyCpuPercent = await MeasureCpuPercentAsync(gateway.ProcessId, cancellationToken);
        var idleMemory = ProcFs.ReadMemory(gateway.ProcessId);

        var bulk = await RunBulkPingAsync(api, gateway, broker, devices, cancellationToken);

        var rows = new List<ResultRow>
        {
            new(tcp ? "devices connected and SIGNUP written (200 at a time)" : "devices connected, subscribed and SIGN_IN published (200 at a time)",
                Report.Seconds(connected)),
            new("first connect → gateway has stored all signed in", Report.Seconds(allSignedIn)),
            new($"gateway RSS with the fleet signed in, after {2 * IdleWindow.TotalSeconds:0} s idle", Report.Megabytes(idleMemory.RssMb)),
            new($"gateway CPU while idle, first {IdleWindow.TotalSeconds:0} s after the last sign-in", $"{idleCpuPercent:0.0} % of one core"),
            new($"gateway CPU while idle, the {IdleWindow.TotalSeconds:0} s after that", $"{steadyCpuPercent:0.0} % of one core"),
            new("bulk PING: POST → all answers stored", Report.Seconds(bulk.Duration), devices == DefaultDevices ? Report.Target("< 10 s", bulk.Duration < TimeSpan.FromSeconds(10)) : "target < 10 s is for 10,000 devices"),
            new("bulk PING: POST /api/commands/bulk answered 202 after", Report.Seconds(bulk.PostDuration)),
            new("bulk PING: commands completed per second", Report.Rate(devices / bulk.Duration.TotalSeconds, "commands")),
            new("gateway CPU during the bulk PING", $"{bulk.CpuPercent:0} % of one core ({Environment.ProcessorCount} cores)"),
            new("… and at the same time Mosquitto / the bench's simulated devices", $"{bulk.BrokerCpuPercent:0} % / {bulk.BenchCpuPercent:0} % of one core"),
            new("gateway peak RSS during the bulk PING (sampled every 100 ms)", Report.Megabytes(bulk.PeakSampledRssMb)),
            new("gateway peak RSS over the whole run (VmHWM)", Report.Megabytes(bulk.PeakRssMb), Report.Target("< 300 MB", bulk.PeakRssMb < 300)),
        };
        var notes = new List<string>
        {
            tcp
                ? $"{Report.Count(devices)} devices, each an in-process socket to the gateway's TCP listener speaking the article's tcp/iot-device.js protocol, answering PONG; the bench, Mosquitto (the gateway's own connection only) and the gateway share the machine's {Environment.ProcessorCount} cores."
                : $"{Report.Count(devices)} devices, each an in-process MQTTnet client with its own connection and persistent session, answering PONG at QoS 2; the bench, Mosquitto and the gateway share the machine's {Environment.ProcessorCount} cores.",
            "Signed-in devices and the bulk PING's completed commands counted from the gateway's SQLite file (every 200 and 100 ms), so the polling does not load the gateway; the API is checked once after each.",
        };
        if (fleet.AnswerFailures > 0)
        {
            notes.Add($"DEVICE ANSWER FAILURES: {fleet.AnswerFailures}, first: {fleet.FirstAnswerFailure}");
        }

        if (fleet.CommandsReceived != devices)
        {
            notes.Add($"DEVICES RECEIVED {fleet.CommandsReceived} COMMANDS for {devices} queued (duplicates or losses).");
        }

        return new BenchResult(tcp ? "fleet-tcp" : "fleet", $"fleet: {Report.Count(devices)} always-online {(tcp ? "TCP" : "MQTT")} devices", rows, notes);
    }

    private static async Task<double> MeasureCpuPercentAsync(int pid, CancellationToken cancellationToken)
    {
        var before = ProcFs.ReadCpuTime(pid);
        var window = Stopwatch.StartNew();
        await Task.Delay(IdleWindow, cancellationToken); // a measurement window, not a wait for a condition
        return (ProcFs.ReadCpuTime(pid) - before) / window.Elapsed * 100;
    }

    private sealed record BulkRun(TimeSpan Duration, TimeSpan PostDuration, double CpuPercent, double BrokerCpuPercent, double BenchCpuPercent,
        double PeakSampledRssMb, double PeakRssMb);

    private static async Task<BulkRun> RunBulkPingAsync(GatewayApi api, BenchGateway gateway, MosquittoBroker broker, int devices, CancellationToken cancellationToken)
    {
        // The broker's and the bench's own CPU too: on a small machine they compete with the gateway for the cores.
        var cpuBefore = ProcFs.ReadCpuTime(gateway.ProcessId);
        var brokerPid = broker.ProcessId ?? throw new BenchFailure("Mosquitto stopped during the run.");
        var brokerCpuBefore = ProcFs.ReadCpuTime(brokerPid);
        var benchCpuBefore = ProcFs.ReadCpuTime(Environment.ProcessId);
        var elapsed = Stopwatch.StartNew();
        var accepted = await api.QueueCommandForSignedInDevicesAsync("PING", cancellationToken);
        var postDuration = elapsed.Elapsed;
        if (accepted.Count != devices)
        {
            throw new BenchFailure($"POST /api/commands/bulk queued {accepted.Count} commands for {devices} signed-in devices.");
        }

        var peakRss = ProcFs.ReadMemory(gateway.ProcessId).RssBytes;
        var completed = 0;
        var lastProgress = Stopwatch.StartNew();
        var timeout = TimeSpan.FromSeconds(60 + devices / 100);
        while (true)
        {
            var done = GatewayDatabase.Scalar(gateway.DatabasePath,
                $"""SELECT COUNT(*) FROM "Commands" WHERE "BatchId" = '{accepted.BatchId}' AND "Status" = 'Completed'""");
            peakRss = Math.Max(peakRss, ProcFs.ReadMemory(gateway.ProcessId).RssBytes);
            if (done >= devices)
            {
                break;
            }

            if (done > completed)
            {
                completed = (int)done;
                lastProgress.Restart();
            }

            gateway.ThrowIfExited($"during the bulk PING ({done} of {devices} completed)");
            if (lastProgress.Elapsed > StallTimeout || elapsed.Elapsed > timeout)
            {
                var summary = await api.GetBulkSummaryAsync(accepted.BatchId, cancellationToken);
                throw new BenchFailure($"The bulk PING stalled or ran out of time after {elapsed.Elapsed.TotalSeconds:0.0} s: {summary}. Gateway output:\n{gateway.OutputTail()}");
            }

            await Task.Delay(100, cancellationToken);
        }

        var duration = elapsed.Elapsed;
        var cpuPercent = (ProcFs.ReadCpuTime(gateway.ProcessId) - cpuBefore) / duration * 100;
        var brokerCpuPercent = (ProcFs.ReadCpuTime(brokerPid) - brokerCpuBefore) / duration * 100;
        var benchCpuPercent = (ProcFs.ReadCpuTime(Environment.ProcessId) - benchCpuBefore) / duration * 100;
        var memory = ProcFs.ReadMemory(gateway.ProcessId);
        // After the figures are taken: the check must not count as load.
        var final = await api.GetBulkSummaryAsync(accepted.BatchId, cancellationToken);
        if (final["Completed"] != devices)
        {
            throw new BenchFailure($"The database has all {devices} bulk PINGs Completed but GET /api/commands/bulk/{accepted.BatchId} says {final}.");
        }

        return new BulkRun(duration, postDuration, cpuPercent, brokerCpuPercent, benchCpuPercent, Math.Max(peakRss, memory.RssBytes) / (1024.0 * 1024.0), memory.PeakRssMb);
    }

    /// <summary>Every device is a socket in this process; a process cannot raise its own limit past what the shell gave it.</summary>
    private static void CheckOpenFileLimit(int devices)
    {
        var needed = devices + SpareFileDescriptors;
        if (ProcFs.OpenFileLimit() is { } limit && limit < needed)
        {
            throw new BenchFailure(
                $"{Report.Count(devices)} devices need at least {Report.Count(needed)} open files, but this shell allows {Report.Count(limit)}. "
                + $"Raise it first (`ulimit -n {Math.Max(65536, needed)}`, within the hard limit `ulimit -Hn`), or run with --devices {Math.Max(1, limit - SpareFileDescriptors)}.");
        }
    }
}
