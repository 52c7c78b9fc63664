namespace IotGateway.Bench.Infrastructure;

/// <summary>One line of a results table: what was measured, the figure, and the limit or target it is read against.</summary>
public sealed record ResultRow(string Figure, string Measured, string LimitOrTarget = "");

/// <summary>What one benchmark found: its rows, and notes (sizes, caveats, anything odd the gateway did).</summary>
public sealed record BenchResult(string Name, string Title, IReadOnlyList<ResultRow> Rows, IReadOnlyList<string> Notes);

/// <summary>Markdown output, and the formatting of figures in it.</summary>
public static class Report
{
    public static void Print(BenchResult result)
    {
        Console.WriteLine();
        Console.WriteLine($"## {result.Title}");
        Console.WriteLine();
        Console.Write(Table(result.Rows));
        foreach (var note in result.Notes)
        {
            Console.WriteLine($"- {note}");
        }

        Console.WriteLine();
        Console.WriteLine(Machine());
    }

    public static string Table(IEnumerable<ResultRow> rows)
    {
        var table = new StringBuilder();
        table.Append("| figure | measured | limit / target |\n|---|---:|---|\n");
        foreach (var row in rows)
        {
            table.Append($"| {Escape(row.Figure)} | {Escape(row.Measured)} | {Escape(row.LimitOrTarget)} |\n");
        }

        return table.ToString();
    }

    /// <summary>The machine line every run ends with: figures mean little without it. The load average tells whether something else was running.</summary>
    public static string Machine() =>
        $"Machine: {Environment.ProcessorCount} cores, {ProcFs.CpuModel()}, {Environment.OSVersion.VersionString}, .NET {Environment.Version}; "
        + $"run {DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC; load average {ProcFs.LoadAverage()} (1/5/15 min).";

    public static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.00} s";

    public static string Milliseconds(double ms) => ms < 10 ? $"{ms:0.00} ms" : $"{ms:0.0} ms";

    public static string Rate(double perSecond, string unit) => $"{perSecond:N0} {unit}/s";

    public static string Megabytes(double mb) => $"{mb:0} MB";

    public static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>"target ≤ 2 s: met" — states the target and whether this run met it.</summary>
    public static string Target(string target, bool met) => $"target {target}: {(met ? "met" : "MISSED")}";

    private static string Escape(string text) => text.Replace("|", "\\|", StringComparison.Ordinal);
}
