using System.Diagnostics;
using Xunit.Abstractions;

namespace IotGateway.Tests.Gateway;

// Alone: it measures the memory of the whole test process, which parallel tests would move.
[CollectionDefinition(nameof(ExportMemoryTests), DisableParallelization = true)]
public sealed class ExportMemoryCollection;

// An export is streamed from the database to the client: however many readings, the gateway holds about one.
[Collection(nameof(ExportMemoryTests))]
public sealed class ExportMemoryTests(ITestOutputHelper output)
{
    private const int Readings = 200_000;

    [Theory]
    [InlineData("csv")]
    [InlineData("ndjson")]
    public async Task ExportOf200000ReadingsStreamsInFlatMemory(string format)
    {
        await using var gateway = await GatewayApp.StartAsync("mqtt://127.0.0.1:1", waitUntilReady: false);
        var start = DateTimeOffset.UtcNow.AddDays(-3);
        SeededReadings.Insert(gateway.DatabasePath, "bulky", Enumerable.Range(0, Readings).Select(i => new SeededReadings.Reading(
            start.AddSeconds(i), $$"""{"deviceId":"bulky","messageType":"DATA","temp":{{20 + i % 100 / 10.0}},"lat":48.01,"lng":-88.62,"messageId":"m-{{i}}"}""",
            MessageKey: $"m-{i}")));

        // Warm: the route, the query and the writer once, on a small range, so the measurement sees only growth.
        await gateway.Http.GetStringAsync($"/api/devices/bulky/telemetry/export?format={format}&to={Uri.EscapeDataString(start.AddSeconds(10).ToString("O"))}");
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        var workingSetBefore = Process.GetCurrentProcess().WorkingSet64;

        // Sampled while the download runs: live managed memory after a full collection, so garbage is not counted.
        long peak = baseline;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: true));
                await Task.Delay(20, CancellationToken.None);
            }
        });

        long bytes = 0;
        long lines = 0;
        using (var response = await gateway.Http.GetAsync($"/api/devices/bulky/telemetry/export?format={format}", HttpCompletionOption.ResponseHeadersRead))
        {
            response.EnsureSuccessStatusCode();
            await using var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                bytes += read;
                lines += buffer.AsSpan(0, read).Count((byte)'\n');
            }
        }

        await sampling.CancelAsync();
        await sampler;
        var growth = peak - baseline;
        var workingSetGrowth = Process.GetCurrentProcess().WorkingSet64 - workingSetBefore;
        output.WriteLine($"{format}: {bytes / 1e6:0.0} MB, {lines} lines; managed memory peak growth {growth / 1e6:0.0} MB; working set growth {workingSetGrowth / 1e6:0.0} MB");

        Assert.Equal(Readings + (format == "csv" ? 1 : 0), lines);
        Assert.True(bytes > 30_000_000, $"the export is {bytes} bytes");
        // Buffered, the rows alone would be about 100 MB of managed memory; streamed, growth stays near the buffers.
        Assert.True(growth < 16_000_000, $"managed memory grew by {growth / 1e6:0.0} MB while {bytes / 1e6:0.0} MB were exported");
    }
}
