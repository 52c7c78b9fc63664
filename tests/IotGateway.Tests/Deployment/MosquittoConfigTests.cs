using System.Text.RegularExpressions;

namespace IotGateway.Tests.Deployment;

// The compose file's Mosquitto keeps what the gateway has not acknowledged: no setting that loses messages is left at
// its default, and the README's table states the values the file really has.
public sealed partial class MosquittoConfigTests
{
    [Fact]
    public void TheComposeMosquittoSetsEveryLossyDefaultAsTheReadmeSays()
    {
        var config = File.ReadAllLines(Path.Combine(Repository.Root, "deploy", "mosquitto", "mosquitto.conf"))
            .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split(' ', 2)).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal("true", config["persistence"]);
        Assert.InRange(int.Parse(config["autosave_interval"], System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        Assert.True(int.Parse(config["max_queued_messages"], System.Globalization.CultureInfo.InvariantCulture) >= 100_000);
        Assert.True(int.Parse(config["max_inflight_messages"], System.Globalization.CultureInfo.InvariantCulture) >= 1000);
        Assert.Equal("0", config["max_queued_bytes"]);

        var readme = File.ReadAllText(Path.Combine(Repository.Root, "README.md"));
        var rows = TableRow().Matches(readme).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        foreach (var setting in new[] { "persistence", "autosave_interval", "max_queued_messages", "max_queued_bytes", "max_inflight_messages" })
        {
            Assert.True(rows.TryGetValue(setting, out var stated), $"the README's Mosquitto table names {setting}");
            Assert.Equal(config[setting], stated);
        }
    }

    // | `setting` | default … | `value` …
    [GeneratedRegex(@"^\| `([a-z_]+)` \| [^|]+ \| `([^`]+)`", RegexOptions.Multiline)]
    private static partial Regex TableRow();
}
