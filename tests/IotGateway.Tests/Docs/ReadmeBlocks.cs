using System.Text;
using System.Text.RegularExpressions;

namespace IotGateway.Tests.Docs;

/// <summary>A fenced code block of a Markdown file, with the doc-test marker on the line before it, if any.</summary>
public sealed partial record ReadmeBlock(int Line, string Language, string Text, ReadmeBlockMarker Marker, string? ExclusionReason)
{
    public static readonly IReadOnlySet<string> ShellLanguages = new HashSet<string>(StringComparer.Ordinal) { "sh", "bash", "shell", "console", "zsh" };

    public bool IsShell => ShellLanguages.Contains(Language);

    /// <summary>The <c># → …</c> lines: what the README says the block prints.</summary>
    public IEnumerable<string> ExpectedOutput =>
        Text.Split('\n').Select(l => ExpectedLine().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value.TrimEnd());

    [GeneratedRegex(@"^\s*# → (.*)$")]
    private static partial Regex ExpectedLine();
}

public enum ReadmeBlockMarker
{
    None,
    Run,
    Excluded,
}

/// <summary>
/// Reads the README's fenced blocks and turns the ones marked <c>&lt;!-- doc-test --&gt;</c> into one bash script
/// against a gateway on other ports than the documented ones.
/// </summary>
public static partial class ReadmeBlocks
{
    public static IReadOnlyList<ReadmeBlock> Parse(string markdown, out IReadOnlyList<int> orphanMarkers)
    {
        var lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var blocks = new List<ReadmeBlock>();
        var orphans = new List<int>();
        int? pendingMarker = null;
        for (var i = 0; i < lines.Length; i++)
        {
            if (Marker().IsMatch(lines[i]))
            {
                if (pendingMarker is { } earlier)
                {
                    orphans.Add(earlier + 1);
                }

                pendingMarker = i;
                continue;
            }

            if (!lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                if (lines[i].Trim().Length > 0 && pendingMarker is { } stray)
                {
                    orphans.Add(stray + 1);
                    pendingMarker = null;
                }

                continue;
            }

            var language = lines[i][3..].Trim();
            var start = i;
            var body = new StringBuilder();
            for (i++; i < lines.Length && !lines[i].StartsWith("```", StringComparison.Ordinal); i++)
            {
                body.Append(lines[i]).Append('\n');
            }

            var (marker, reason) = ReadMarker(pendingMarker is { } m && m == start - 1 ? lines[m] : null);
            if (pendingMarker is { } notAdjacent && notAdjacent != start - 1)
            {
                orphans.Add(notAdjacent + 1);
            }

            pendingMarker = null;
            blocks.Add(new ReadmeBlock(start + 1, language, body.ToString(), marker, reason));
        }

        if (pendingMarker is { } last)
        {
            orphans.Add(last + 1);
        }

        orphanMarkers = orphans;
        return blocks;
    }

    /// <summary>
    /// The run blocks as one script, in README order (later blocks use the variables of earlier ones, as a reader's
    /// terminal does), with the documented addresses replaced by the test gateway's.
    /// </summary>
    public static string Script(IEnumerable<ReadmeBlock> blocks, int httpPort, int mqttPort)
    {
        var script = new StringBuilder();
        script.Append("set -euo pipefail\n");
        // Background clients a block starts (a device's mosquitto_sub) end with the script, failed or not.
        script.Append("trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
        script.Append("PS4='+ README: '\nset -x\n");
        foreach (var block in blocks)
        {
            script.Append(CultureInfoInvariant($"\n# README.md line {block.Line}\n"));
            script.Append(Substitute(block.Text, httpPort, mqttPort));
        }

        return script.ToString();
    }

    /// <summary>The documented ports (HTTP 5000, MQTT 1883) become the test's, which other runs cannot hold.</summary>
    public static string Substitute(string text, int httpPort, int mqttPort) =>
        text.Replace("localhost:5000", $"127.0.0.1:{httpPort}", StringComparison.Ordinal)
            .Replace("-p 1883", $"-p {mqttPort}", StringComparison.Ordinal)
            .Replace("localhost:1883", $"127.0.0.1:{mqttPort}", StringComparison.Ordinal);

    /// <summary>A documented port the substitution missed: the script would talk to whatever else holds it.</summary>
    public static IEnumerable<string> DocumentedPortsLeft(string script) =>
        script.Split('\n').Where(l => DocumentedPort().IsMatch(l) && !l.TrimStart().StartsWith('#'));

    /// <summary>
    /// Each expected line, in order, must match a later output line than the one before it; <c>…</c> matches anything.
    /// Returns the first expected line that was not printed, or null.
    /// </summary>
    public static string? FirstMissingExpectation(IEnumerable<string> expected, string output)
    {
        var lines = output.Replace("\r", "", StringComparison.Ordinal).Split('\n');
        var next = 0;
        foreach (var expectation in expected)
        {
            var pattern = new Regex("^" + Regex.Escape(expectation).Replace("…", ".*", StringComparison.Ordinal) + "$", RegexOptions.None, TimeSpan.FromSeconds(1));
            var found = Array.FindIndex(lines, next, l => pattern.IsMatch(l.TrimEnd()));
            if (found < 0)
            {
                return expectation;
            }

            next = found + 1;
        }

        return null;
    }

    private static (ReadmeBlockMarker, string?) ReadMarker(string? line)
    {
        if (line is null)
        {
            return (ReadmeBlockMarker.None, null);
        }

        var match = Marker().Match(line);
        var reason = match.Groups["reason"].Value.Trim();
        return match.Groups["excluded"].Success ? (ReadmeBlockMarker.Excluded, reason) : (ReadmeBlockMarker.Run, null);
    }

    private static string CultureInfoInvariant(FormattableString text) => FormattableString.Invariant(text);

    [GeneratedRegex(@"^<!-- doc-test(?<excluded>: excluded:(?<reason>.*))? -->\s*$")]
    private static partial Regex Marker();

    [GeneratedRegex(@"(?<![\d.])(5000|1883)(?!\d)")]
    private static partial Regex DocumentedPort();
}
