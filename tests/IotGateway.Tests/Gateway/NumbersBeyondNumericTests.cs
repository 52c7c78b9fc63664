using IotGateway.Telemetry;

namespace IotGateway.Tests.Gateway;

// A JSON number PostgreSQL's numeric cannot hold (more than 131,072 digits before the point or 16,383 after, once the
// exponent is applied) makes the document no jsonb: such a reading is stored as text, on both databases, and the
// aggregates skip it instead of failing. A number too small for a double counts as 0, as SQLite reads it.
public sealed class SqliteNumbersBeyondNumericTests : NumbersBeyondNumericTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

public sealed class PostgresNumbersBeyondNumericTests : NumbersBeyondNumericTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

public abstract class NumbersBeyondNumericTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    protected abstract DatabaseProvider Provider { get; }

    [SkippableFact]
    public async Task AReadingWithANumberBeyondNumericIsStoredAsTextAndSkippedByTheAggregates()
    {
        var (started, port) = await GatewayApp.StartEmbeddedAsync(provider: Provider);
        await using var gateway = started;
        string[] beyond = ["""{"t":1e1000000}""", """{"t":1e131072}""", """{"t":0.5e131073}""", """{"t":1e-16384}""", """{"t":0.0e-16384}"""];
        string[] within = ["""{"t":21}""", """{"t":1e131071}""", """{"t":1e-16383}""", """{"t":1e-400}"""];
        await using (var device = await TestMqttClient.ConnectAsync("127.0.0.1", port, "huge"))
        {
            foreach (var payload in within.Concat(beyond))
            {
                await device.PublishAsync(TopicRoots.Default.For("huge").Data, payload);
            }
        }

        await gateway.WaitForDeviceAsync("huge", d => d.TelemetryCount == within.Length + beyond.Length, "every reading is stored", Timeout);
        var page = (await gateway.Http.GetFromJsonAsync<Page<ReadingView>>("/api/devices/huge/telemetry?limit=100", GatewayApp.Json))!;
        Assert.Equal(beyond.Order(StringComparer.Ordinal), page.Items.Where(r => r.Format == PayloadFormat.Text).Select(r => r.Payload.GetString()!).Order(StringComparer.Ordinal));
        Assert.Equal(within.Length, page.Items.Count(r => r.Format == PayloadFormat.Json));

        var from = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"));
        var response = await gateway.Http.GetAsync($"/api/devices/huge/telemetry/aggregate?field=t&interval=1d&from={from}");
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"aggregate: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        var aggregate = (await response.Content.ReadFromJsonAsync<AggregateAnswer>(GatewayApp.Json))!;
        // 21, and 1e-16383 and 1e-400 as 0; 1e131071 is no finite double, the rest are text.
        Assert.Equal(3, aggregate.Items.Sum(i => i.Count));
        Assert.Equal(beyond.Length + 1, aggregate.Skipped);
        Assert.Equal(21, aggregate.Items.Max(i => i.Max));
        Assert.Equal(0, aggregate.Items.Min(i => i.Min));
    }
}
