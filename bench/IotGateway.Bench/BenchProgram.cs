using System.Runtime.InteropServices;
using IotGateway.Bench.Benchmarks;

namespace IotGateway.Bench;

/// <summary>Subcommands, their options, and what a run prints and returns.</summary>
public static class BenchProgram
{
    private const string Usage = """
        IotGateway benchmarks. Each subcommand starts its own Mosquitto on a free loopback port and the gateway
        from its build output (build it first: dotnet build -c Release src/IotGateway), prints its figures as a
        Markdown table, and exits non-zero if it could not measure them.

        Usage: dotnet run --project bench/IotGateway.Bench -c Release -- <subcommand> [options] [--configuration Release|Debug]

          ingest    [--readings 100000] [--rounds 3]           drain a QoS 1 backlog: gateway (SQLite, PostgreSQL) vs mosquitto_sub
          roundtrip [--devices 100] [--commands 10000] [--callers 8] [--warmup 15000] [--database sqlite|postgresql]
                                                               command round trip vs bare MQTT request/response
          fleet     [--devices 10000] [--transport mqtt|tcp]   sign-in, memory, CPU and a bulk PING of a large fleet
          startup   [--readings 1000000]                       start → ready, empty and with N stored readings
          reads     [--readings 1000000]                       aggregates, export, latest, event latency over N readings; retention
          all                                                  all of the above with their defaults, one table
          catchup   [--readings 100000] [--rounds 3]           process start → all stored: gateway vs the article's Node.js server vs mosquitto_sub
          compare   [--readings 100000] [--rounds 3] [--devices 100] [--commands 10000] [--callers 16] [--warmup 15000]
                                                               issue 19's comparisons in one run: catchup, then roundtrip (both forms), and their ratios
                                                               (the published build by default: dotnet publish -c Release -r linux-x64 src/IotGateway)

          --configuration   which build of the gateway to run (default Release)
          --gateway         build (default; compare: publish), publish, or the path of an IotGateway.dll or its folder
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args is [MqttnetDrain.Subcommand, .. var drainArgs])
        {
            // Started by the ingest benchmark as its own process; not listed in the usage.
            return await MqttnetDrain.RunAsync(drainArgs);
        }

        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        using var interrupted = new CancellationTokenSource();
        // Ctrl+C or SIGTERM: cancel, so the finally blocks stop the broker and the gateway and delete their
        // folders; a second signal kills them at once and lets the bench end.
        void OnSignal(PosixSignalContext context)
        {
            if (!interrupted.IsCancellationRequested)
            {
                context.Cancel = true;
                interrupted.Cancel();
            }
            else
            {
                ChildProcess.KillAll();
            }
        }

        using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        var subcommand = args[0];
        try
        {
            var options = Options(subcommand, args[1..]);
            var layout = RepositoryLayout.Locate(options.Text("configuration", "Release"), options.Text("gateway", subcommand == "compare" ? "publish" : "build"));
            if (subcommand == "all")
            {
                return await RunAllAsync(layout, interrupted.Token);
            }

            if (subcommand == "compare")
            {
                await CompareAsync(layout, options, interrupted.Token);
                return 0;
            }

            var result = await RunOneAsync(subcommand, layout, options, interrupted.Token);
            Report.Print(result);
            return 0;
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync($"{e.Message}\n\n{Usage}");
            return 2;
        }
        catch (Exception e) when (e is BenchFailure or TimeoutException)
        {
            await Console.Error.WriteLineAsync($"bench {subcommand} failed: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException) when (interrupted.IsCancellationRequested)
        {
            await Console.Error.WriteLineAsync($"bench {subcommand} interrupted.");
            return 130;
        }
        catch (Exception e)
        {
            await Console.Error.WriteLineAsync($"bench {subcommand} failed unexpectedly: {e}");
            return 1;
        }
        finally
        {
            ChildProcess.KillAll();
        }
    }

    private static BenchArguments Options(string subcommand, string[] rest) => subcommand switch
    {
        "ingest" => BenchArguments.Parse(rest, ["readings", "rounds", "configuration", "gateway"]),
        "roundtrip" => BenchArguments.Parse(rest, ["devices", "commands", "callers", "warmup", "database", "configuration", "gateway"]),
        "fleet" => BenchArguments.Parse(rest, ["devices", "transport", "configuration", "gateway"]),
        "startup" => BenchArguments.Parse(rest, ["readings", "configuration", "gateway"]),
        "reads" => BenchArguments.Parse(rest, ["readings", "configuration", "gateway"]),
        "all" => BenchArguments.Parse(rest, ["configuration", "gateway"]),
        "catchup" => BenchArguments.Parse(rest, ["readings", "rounds", "configuration", "gateway"]),
        "compare" => BenchArguments.Parse(rest, ["readings", "rounds", "devices", "commands", "callers", "warmup", "configuration", "gateway"]),
        _ => throw new UsageException($"Unknown subcommand '{subcommand}'."),
    };

    private static Task<BenchResult> RunOneAsync(string subcommand, RepositoryLayout layout, BenchArguments options, CancellationToken cancellationToken) =>
        subcommand switch
        {
            "ingest" => new IngestBenchmark(layout).RunAsync(
                options.Int("readings", IngestBenchmark.DefaultReadings), options.Int("rounds", IngestBenchmark.DefaultRounds), cancellationToken),
            "roundtrip" => new RoundTripBenchmark(layout).RunAsync(
                options.Int("devices", RoundTripBenchmark.DefaultDevices),
                options.Int("commands", RoundTripBenchmark.DefaultCommands),
                options.Int("callers", RoundTripBenchmark.DefaultCallers),
                options.Int("warmup", RoundTripBenchmark.DefaultWarmUpCommands),
                options.Text("database", "sqlite"),
                cancellationToken),
            "catchup" => RunCatchUpAsync(layout, options, cancellationToken),
            "fleet" => new FleetBenchmark(layout).RunAsync(options.Int("devices", FleetBenchmark.DefaultDevices), options.Text("transport", "mqtt"),
                cancellationToken),
            "startup" => new StartupBenchmark(layout).RunAsync(options.Int("readings", StartupBenchmark.DefaultReadings, min: 0), cancellationToken),
            "reads" => new ReadsBenchmark(layout).RunAsync(options.Int("readings", ReadsBenchmark.DefaultReadings, min: 1000), cancellationToken),
            _ => throw new UsageException($"Unknown subcommand '{subcommand}'."),
        };

    private static async Task<BenchResult> RunCatchUpAsync(RepositoryLayout layout, BenchArguments options, CancellationToken cancellationToken) =>
        (await new CatchUpBenchmark(layout).RunAsync(options.Int("readings", IngestBenchmark.DefaultReadings),
            options.Int("rounds", IngestBenchmark.DefaultRounds), cancellationToken)).Result;

    /// <summary>
    /// Issue 19's comparisons in one invocation: catching up after a restart against the article's server and
    /// mosquitto_sub, and the command round trip (both forms) against bare MQTT; each result, then the ratios.
    /// </summary>
    private static async Task CompareAsync(RepositoryLayout layout, BenchArguments options, CancellationToken cancellationToken)
    {
        var catchUp = await new CatchUpBenchmark(layout).RunAsync(options.Int("readings", IngestBenchmark.DefaultReadings),
            options.Int("rounds", IngestBenchmark.DefaultRounds), cancellationToken);
        Report.Print(catchUp.Result);
        Console.Error.WriteLine("round trip …");
        var roundTrip = await new RoundTripBenchmark(layout).MeasureAsync(options.Int("devices", RoundTripBenchmark.DefaultDevices),
            options.Int("commands", RoundTripBenchmark.DefaultCommands), options.Int("callers", RoundTripBenchmark.DefaultCallers),
            options.Int("warmup", RoundTripBenchmark.DefaultWarmUpCommands), "sqlite", cancellationToken);
        Report.Print(roundTrip.Result);

        var (middle, bare) = (catchUp.Middle, roundTrip.Bare);
        var rows = new List<ResultRow>
        {
            middle.Article is { } article
                ? new("catch-up: gateway start → all stored / the article's server start → drained",
                    $"{middle.GatewayAllStored / article:0.00}× ({Report.Seconds(middle.GatewayAllStored)} / {Report.Seconds(article)})",
                    Report.Target("≤ 1×", middle.GatewayAllStored <= article))
                : new("catch-up: the article's server", "not measured", catchUp.ArticleProblem ?? ""),
            new("catch-up: gateway start → all stored / mosquitto_sub start → drained",
                $"{middle.GatewayAllStored / middle.Subscriber:0.00}× ({Report.Seconds(middle.GatewayAllStored)} / {Report.Seconds(middle.Subscriber)})"),
            new("start-up: gateway process start → ready", Report.Seconds(middle.GatewayReady), Report.Target("≤ 0.5 s", middle.GatewayReady <= TimeSpan.FromSeconds(0.5))),
            new("catch-up CPU time: gateway start → all stored / the article's server start → drained",
                middle.ArticleCpu is { } articleCpu ? $"{middle.GatewayCpuAtAllStored / articleCpu:0.00}× ({Report.Seconds(middle.GatewayCpuAtAllStored)} / {Report.Seconds(articleCpu)})" : "n/a",
                "what each costs, whatever else shares the cores"),
            new("start-up CPU time: gateway process start → ready", middle.GatewayCpuAtReady is { } readyCpu ? Report.Seconds(readyCpu) : "n/a"),
        };
        foreach (var (name, m) in new[] { ("POST + wait-GET", roundTrip.PostThenGet), ("synchronous POST", roundTrip.Synchronous) })
        {
            var (p50, p99, rate) = (m.Latency.P50Ms / bare.Latency.P50Ms, m.Latency.P99Ms / bare.Latency.P99Ms, m.Rate / bare.Rate);
            rows.Add(new($"round trip, {name}: p50 / bare", $"{p50:0.0}× ({Report.Milliseconds(m.Latency.P50Ms)} / {Report.Milliseconds(bare.Latency.P50Ms)})", Report.Target("≤ 2×", p50 <= 2)));
            rows.Add(new($"round trip, {name}: p99 / bare", $"{p99:0.0}× ({Report.Milliseconds(m.Latency.P99Ms)} / {Report.Milliseconds(bare.Latency.P99Ms)})", Report.Target("≤ 2×", p99 <= 2)));
            rows.Add(new($"round trip, {name}: commands/s / bare", $"{rate:0.00}× ({Report.Rate(m.Rate, "commands")} / {Report.Rate(bare.Rate, "requests")})", Report.Target("≥ 0.5×", rate >= 0.5)));
        }

        Report.Print(new BenchResult("compare", "compare: the gateway against the article's server, mosquitto_sub and bare MQTT", rows,
            [$"The gateway: {layout.Description}. Catch-up: the middle of the rounds above; round trip: one run, after the warm-up."]));
    }

    /// <summary>Every benchmark with its defaults, one after another; a failure is a row of the table, and makes the exit code 1.</summary>
    private static async Task<int> RunAllAsync(RepositoryLayout layout, CancellationToken cancellationToken)
    {
        var defaults = BenchArguments.Parse([], []);
        var rows = new List<ResultRow>();
        var notes = new List<string>();
        var failed = false;
        foreach (var (subcommand, options) in new[] { ("ingest", defaults), ("roundtrip", defaults),
                     ("roundtrip", BenchArguments.Parse(["--database", "postgresql"], ["database"])), ("fleet", defaults), ("startup", defaults),
                     ("reads", defaults) })
        {
            Console.Error.WriteLine($"running {subcommand} …");
            try
            {
                var result = await RunOneAsync(subcommand, layout, options, cancellationToken);
                Report.Print(result);
                rows.AddRange(result.Rows.Select(r => r with { Figure = $"{result.Name}: {r.Figure}" }));
                notes.AddRange(result.Notes.Select(n => $"{result.Name}: {n}"));
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                failed = true;
                await Console.Error.WriteLineAsync($"bench {subcommand} failed: {e.Message}");
                rows.Add(new ResultRow($"{subcommand}", "FAILED", e.Message.Split('\n')[0]));
            }
            finally
            {
                ChildProcess.KillAll();
            }
        }

        Report.Print(new BenchResult("all", "all benchmarks", rows, notes));
        return failed ? 1 : 0;
    }
}
