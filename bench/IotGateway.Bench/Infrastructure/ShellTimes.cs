using System.Text.RegularExpressions;

namespace IotGateway.Bench.Infrastructure;

public static partial class ShellTimes
{
    /// <summary>
    /// The children's CPU time (user + system) from a shell's `times` output: its second line, "0m1.234s 0m0.056s".
    /// </summary>
    public static TimeSpan? ChildrenCpuTime(string output)
    {
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => TimesLine().IsMatch(l)).ToArray();
        if (lines.Length < 2)
        {
            return null;
        }

        return lines[^1].Split(' ').Select(t =>
        {
            var m = t.IndexOf('m', StringComparison.Ordinal);
            return TimeSpan.FromMinutes(int.Parse(t[..m], CultureInfo.InvariantCulture))
                + TimeSpan.FromSeconds(double.Parse(t[(m + 1)..^1], CultureInfo.InvariantCulture));
        }).Aggregate(TimeSpan.Zero, (a, b) => a + b);
    }

    [GeneratedRegex(@"^\d+m[\d.]+s \d+m[\d.]+s$")]
    private static partial Regex TimesLine();
}
