namespace IotGateway.Bench.Benchmarks;

/// <summary>
/// Catching up after a restart, as a user compares it: N QoS 1 readings wait in the broker, then each reader starts
/// and is timed from its process start until it has them all: mosquitto_sub (prints them, the limit), the article's
/// Node.js server (logs them, stores nothing) and the gateway (stores every one; also start → ready).
/// </summary>
public sealed class CatchUpBenchmark(RepositoryLayout layout)
{
    private const string GatewayClientId = "bench-catchup-gateway";
    private const string SubscriberClientId = "bench-catchup-sub";
    private const string ArticleClientId = "bench-catchup-article";

    public sealed record Round(TimeSpan Subscriber, TimeSpan? Article, TimeSpan GatewayReady, TimeSpan GatewayAllStored, TimeSpan GatewayDrain)
    {
        // CPU time (user + system, all threads) of each: on a shared machine, what each really cost.
        public TimeSpan? SubscriberCpu { get; init; }

        public TimeSpan? ArticleCpu { get; init; }

        public TimeSpan? GatewayCpuAtReady { get; init; }

        public TimeSpan GatewayCpuAtAllStored { get; init; }

        // What the round is ranked by: the gateway against the article's server (or mosquitto_sub without it).
        public double Ratio => GatewayAllStored / (Article ?? Subscriber);
    }

    private static string Cpu(TimeSpan? cpu) => cpu is { } c ? Report.Seconds(c) : "n/a";

    public sealed record Outcome(BenchResult Result, Round Middle, IReadOnlyList<Round> Rounds, string? ArticleProblem);

    public async Task<Outcome> RunAsync(int readings, int rounds, CancellationToken cancellationToken)
    {
        var (article, articleProblem) = await ArticleServer.PrepareAsync(cancellationToken);
        var ingest = new IngestBenchmark(layout);
        var results = new List<Round>();
        var notes = new List<string>();
        for (var round = 1; round <= rounds; round++)
        {
            Console.Error.WriteLine($"catch-up round {round} of {rounds} …");
            await using var broker = await BenchBroker.StartAsync(cancellationToken);
            await MqttnetDrain.CreateSessionAsync(broker, GatewayClientId, IngestBenchmark.DataTopicFilter, cancellationToken);
            await IngestBenchmark.CreateSubscriberSessionAsync(broker, cancellationToken, SubscriberClientId);
            if (article is not null)
            {
                // The article's server subscribes with a persistent session (MQTT 3.1.1, clean: false) under SERVER_ID.
                await IngestBenchmark.CreateSubscriberSessionAsync(broker, cancellationToken, ArticleClientId);
            }

            await IngestBenchmark.PublishBacklogAsync(broker, readings, cancellationToken);
            var subscriber = await IngestBenchmark.DrainWithMosquittoSubAsync(broker, readings, cancellationToken, SubscriberClientId, measureCpu: true);
            (TimeSpan Time, TimeSpan? Cpu)? articleDrain = article is null ? null : await article.DrainAsync(broker, ArticleClientId, readings, cancellationToken);
            var gateway = await ingest.DrainWithGatewayAsync(broker, GatewayClientId, readings, null, cancellationToken);
            notes.AddRange(gateway.Notes);
            results.Add(new Round(subscriber.Total, articleDrain?.Time, gateway.Ready, gateway.Total, gateway.Drain)
            {
                SubscriberCpu = subscriber.Cpu, ArticleCpu = articleDrain?.Cpu, GatewayCpuAtReady = gateway.CpuAtReady, GatewayCpuAtAllStored = gateway.CpuAtAllStored,
            });
        }

        var middle = results.OrderBy(r => r.Ratio).ElementAt(results.Count / 2);
        var reference = middle.Article is { } a ? $"the article's server {Report.Seconds(a)}" : "no article's server";
        var rows = new List<ResultRow>
        {
            new("mosquitto_sub drains the backlog (process start → exit)", Report.Seconds(middle.Subscriber), "the limit"),
            new("the article's Node.js server drains it (process start → exit; logs each message, stores nothing)",
                middle.Article is { } t ? Report.Seconds(t) : $"not measured: {articleProblem}"),
            new("gateway: process start → /health/ready", Report.Seconds(middle.GatewayReady), Report.Target("≤ 0.5 s", middle.GatewayReady <= TimeSpan.FromSeconds(0.5))),
            new("gateway: process start → all readings stored", Report.Seconds(middle.GatewayAllStored),
                middle.Article is { } art ? Report.Target("≤ the article's server", middle.GatewayAllStored <= art) : ""),
            new("gateway: first reading received → all stored", Report.Seconds(middle.GatewayDrain)),
            new("CPU time (user + system): mosquitto_sub, the article's server, the gateway until ready, the gateway until all stored",
                $"{Cpu(middle.SubscriberCpu)}, {Cpu(middle.ArticleCpu)}, {Cpu(middle.GatewayCpuAtReady)}, {Cpu(middle.GatewayCpuAtAllStored)}",
                middle.ArticleCpu is { } ac ? $"gateway / article's server: {middle.GatewayCpuAtAllStored / ac:0.00}×" : ""),
            new("gateway all stored / article's server drained", middle.Article is { } x ? $"{middle.GatewayAllStored / x:0.00}×" : "n/a", reference),
            new("gateway all stored / mosquitto_sub drained", $"{middle.GatewayAllStored / middle.Subscriber:0.00}×"),
            new("each round: mosquitto_sub, article's server, gateway ready, gateway all stored",
                string.Join("; ", results.Select(r => $"{Report.Seconds(r.Subscriber)}, {(r.Article is { } v ? Report.Seconds(v) : "n/a")}, {Report.Seconds(r.GatewayReady)}, {Report.Seconds(r.GatewayAllStored)}"))),
        };
        notes.Insert(0, $"{Report.Count(readings)} QoS 1 readings (~110 bytes JSON, 100 devices) queued in a fresh Mosquitto for three persistent sessions; then mosquitto_sub, the article's server and the gateway (empty SQLite database, {layout.Description}) each start and drain their own session, one after the other. Figures are the middle of {rounds} rounds by the gateway / article ratio.");
        if (articleProblem is not null)
        {
            notes.Add($"The article's server was not measured: {articleProblem}.");
        }

        var result = new BenchResult("catchup", $"catch-up: {Report.Count(readings)} queued QoS 1 readings, process start → all received / stored", rows, notes.Distinct().ToList());
        return new Outcome(result, middle, results, articleProblem);
    }
}
