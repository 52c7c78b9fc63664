using System.Runtime.InteropServices;

namespace IotGateway.Bench.Infrastructure;

/// <summary>Memory of a process, from /proc/&lt;pid&gt;/status.</summary>
/// <param name="RssBytes">VmRSS: resident now.</param>
/// <param name="PeakRssBytes">VmHWM: the most it has been resident since it started.</param>
public sealed record ProcessMemory(long RssBytes, long PeakRssBytes)
{
    public double RssMb => RssBytes / (1024.0 * 1024.0);

    public double PeakRssMb => PeakRssBytes / (1024.0 * 1024.0);
}

/// <summary>Readers of Linux's /proc: process memory and CPU time, the open-file limit, the CPU model.</summary>
public static partial class ProcFs
{
    private const int ScClkTck = 2; // _SC_CLK_TCK on Linux

    private static readonly Lazy<long> ClockTicksPerSecond = new(() => SysConf(ScClkTck) is > 0 and var ticks ? ticks : 100);

    public static ProcessMemory ReadMemory(int pid)
    {
        long rss = 0, peak = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = ParseKilobytes(line);
            }
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = ParseKilobytes(line);
            }
        }

        return new ProcessMemory(rss, peak);
    }

    /// <summary>User plus system CPU time the process has used so far (utime + stime of /proc/&lt;pid&gt;/stat).</summary>
    public static TimeSpan ReadCpuTime(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state), so utime (field 14) and stime (field 15) are fields[11] and fields[12].
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds((double)ticks / ClockTicksPerSecond.Value);
    }

    /// <summary>The soft limit on open files of this process (what `ulimit -n` showed when it started), or null if unknown.</summary>
    public static long? OpenFileLimit()
    {
        foreach (var line in File.ReadLines("/proc/self/limits"))
        {
            if (line.StartsWith("Max open files", StringComparison.Ordinal))
            {
                var parts = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return parts[0] == "unlimited" ? long.MaxValue : long.Parse(parts[0], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    /// <summary>"1.02 0.87 0.55": runnable processes averaged over 1, 5 and 15 minutes.</summary>
    public static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    public static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown CPU" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException)
        {
            return "unknown CPU";
        }
    }

    private static long ParseKilobytes(string line)
    {
        // "VmRSS:	  123456 kB"
        var number = line[(line.IndexOf(':') + 1)..].Trim().Split(' ')[0];
        return long.Parse(number, CultureInfo.InvariantCulture) * 1024;
    }

    [LibraryImport("libc", EntryPoint = "sysconf")]
    private static partial long SysConf(int name);
}
