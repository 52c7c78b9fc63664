namespace IotGateway.Bench.Infrastructure;

/// <summary>`--name value` options after the subcommand; every option must be one the subcommand knows.</summary>
public sealed class BenchArguments
{
    private readonly Dictionary<string, string> _values;

    private BenchArguments(Dictionary<string, string> values) => _values = values;

    public static BenchArguments Parse(IReadOnlyList<string> args, IReadOnlyCollection<string> allowed)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            if (!name.StartsWith("--", StringComparison.Ordinal) || !allowed.Contains(name[2..]))
            {
                throw new UsageException($"Unknown option '{name}'. This subcommand takes: {string.Join(", ", allowed.Select(a => "--" + a))}.");
            }

            if (i + 1 >= args.Count)
            {
                throw new UsageException($"Option '{name}' needs a value.");
            }

            values[name[2..]] = args[++i];
        }

        return new BenchArguments(values);
    }

    public int Int(string name, int defaultValue, int min = 1)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return defaultValue;
        }

        if (!int.TryParse(text.Replace("_", "", StringComparison.Ordinal), NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out var value) || value < min)
        {
            throw new UsageException($"--{name} must be a whole number ≥ {min}, not '{text}'.");
        }

        return value;
    }

    public string Text(string name, string defaultValue) => _values.GetValueOrDefault(name, defaultValue);
}

/// <summary>The command line was wrong: shown with the usage text, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);
