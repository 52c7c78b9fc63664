using System.Globalization;

namespace IotGateway.Testing;

/// <summary>
/// A process as /proc knows it: its id and its start time (clock ticks after boot), so that an id the system has
/// since given to another process does not pass for the owner.
/// </summary>
internal readonly record struct OwnerIdentity(int ProcessId, long StartTicks)
{
    public static OwnerIdentity Current { get; } = new(Environment.ProcessId, StartTicksOf(Environment.ProcessId) ?? 0);

    public bool IsAlive() => StartTicksOf(ProcessId) is { } ticks && (StartTicks == 0 || ticks == StartTicks);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{ProcessId} {StartTicks}");

    public static bool TryParse(string text, out OwnerIdentity owner)
    {
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        owner = default;
        if (parts.Length != 2
            || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out var pid)
            || !long.TryParse(parts[1], CultureInfo.InvariantCulture, out var ticks))
        {
            return false;
        }

        owner = new OwnerIdentity(pid, ticks);
        return true;
    }

    // Field 22 of /proc/<pid>/stat; the command name (field 2) may hold spaces, so fields are counted after its ')'.
    private static long? StartTicksOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
