using System.Runtime.InteropServices;
using IotGateway.Bench.Benchmarks;
using IotGateway.Bench.Infrastructure;

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

          --configuration   which build of the gateway to run (default Release)
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
            var layout = RepositoryLayout.Locate(options.Text("configuration", "Release"));
            if (subcommand == "all")
            {
                return await RunAllAsync(layout, interrupted.Token);
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
        catch (BenchFailure e)
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
        "ingest" => BenchArguments.Parse(rest, ["readings", "rounds", "configuration"]),
        "roundtrip" => BenchArguments.Parse(rest, ["devices", "commands", "callers", "warmup", "database", "configuration"]),
        "fleet" => BenchArguments.Parse(rest, ["devices", "transport", "configuration"]),
        "startup" => BenchArguments.Parse(rest, ["readings", "configuration"]),
        "reads" => BenchArguments.Parse(rest, ["readings", "configuration"]),
        "all" => BenchArguments.Parse(rest, ["configuration"]),
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
            "fleet" => new FleetBenchmark(layout).RunAsync(options.Int("devices", FleetBenchmark.DefaultDevices), options.Text("transport", "mqtt"),
                cancellationToken),
            "startup" => new StartupBenchmark(layout).RunAsync(options.Int("readings", StartupBenchmark.DefaultReadings, min: 0), cancellationToken),
            "reads" => new ReadsBenchmark(layout).RunAsync(options.Int("readings", ReadsBenchmark.DefaultReadings, min: 1000), cancellationToken),
            _ => throw new UsageException($"Unknown subcommand '{subcommand}'."),
        };

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
