using System.ComponentModel;
using System.Reflection;
using IotGateway.Observability;

namespace IotGateway.Hosting;

// The gateway's settings sections, each bound to its options class. Before binding, the section is held against the
// class: a key no option has (a typo, which the binder would otherwise ignore) or a value of the wrong type stops the
// start with a line that names the key and, for a typo, the nearest valid one. Failures are options validation
// failures, so the start-up check reports every section's at once.
public static class ConfigurationBinding
{
    public static OptionsBuilder<T> BindSettings<T>(this OptionsBuilder<T> builder, string section) where T : class
    {
        builder.Services.AddSingleton(new SettingsSection(typeof(T), section));
        return builder.Configure<IConfiguration>((options, configuration) =>
        {
            var values = configuration.GetSection(section);
            var problems = SettingsShape.Problems(typeof(T), values);
            if (problems.Count > 0)
            {
                throw new OptionsValidationException(builder.Name, typeof(T), problems);
            }

            try
            {
                values.Bind(options);
            }
            catch (InvalidOperationException e)
            {
                // A shape the check above does not know: the binder's own words, still as a settings failure.
                throw new OptionsValidationException(builder.Name, typeof(T), [$"{section}: {e.Message}"]);
            }
        });
    }
}

// Which configuration section an options class is bound from, for messages that name keys.
public sealed record SettingsSection(Type OptionsType, string Name);

// A setting the gateway cannot work with, found outside the options validators (e.g. the connection string).
public sealed class InvalidSettingException(string message, Exception? inner = null) : InvalidOperationException(message, inner);

// What keys and values an options class accepts, the way the configuration binder reads it: public properties with a
// public setter, or a class or collection it fills in place; case-insensitive keys; values through the type's converter.
internal static class SettingsShape
{
    public static List<string> Problems(Type type, IConfigurationSection section)
    {
        var problems = new List<string>();
        CheckObject(type, section, problems);
        return problems;
    }

    private static void CheckObject(Type type, IConfigurationSection section, List<string> problems)
    {
        var settable = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.GetIndexParameters().Length == 0 && (p.SetMethod?.IsPublic == true || !IsScalar(p.PropertyType)))
            .Select(p => (p.Name, p.PropertyType))
            .ToList();
        foreach (var child in section.GetChildren())
        {
            var property = settable.FirstOrDefault(p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property.Name is null)
            {
                problems.Add(Unknown(child, section.Path, settable.Select(p => p.Name).ToList()));
            }
            else
            {
                CheckValue(property.PropertyType, child, problems);
            }
        }
    }

    private static void CheckValue(Type type, IConfigurationSection section, List<string> problems)
    {
        var plain = Nullable.GetUnderlyingType(type) ?? type;
        if (IsScalar(plain))
        {
            if (section.Value is null)
            {
                if (section.GetChildren().Any())
                {
                    problems.Add($"setting {section.Path} takes one value, not a section");
                }
            }
            else if (!Converts(type, section.Value))
            {
                problems.Add($"setting {section.Path}: '{LogText.Printable(section.Value)}' is not {Describe(plain)}");
            }
        }
        else if (ItemType(plain) is { } item)
        {
            foreach (var entry in section.GetChildren())
            {
                CheckValue(item, entry, problems);
            }
        }
        else
        {
            CheckObject(plain, section, problems);
        }
    }

    private static string Unknown(IConfigurationSection child, string parent, List<string> known)
    {
        var nearest = known
            .Select(name => (Name: name, Distance: Distance(name.ToUpperInvariant(), child.Key.ToUpperInvariant())))
            .Where(c => c.Distance <= 2
                || c.Name.Contains(child.Key, StringComparison.OrdinalIgnoreCase)
                || child.Key.Contains(c.Name, StringComparison.OrdinalIgnoreCase))
            .OrderBy(c => c.Distance)
            .Select(c => c.Name)
            .FirstOrDefault();
        var path = LogText.Printable(child.Path, 200);
        return nearest is not null
            ? $"unknown setting {path} (did you mean {parent}:{nearest}?)"
            : $"unknown setting {path} (the settings under {parent} are {string.Join(", ", known)})";
    }

    private static bool IsScalar(Type type) => TypeDescriptor.GetConverter(Nullable.GetUnderlyingType(type) ?? type).CanConvertFrom(typeof(string));

    private static bool Converts(Type type, string value)
    {
        try
        {
            _ = TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return true;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or OverflowException)
        {
            return false;
        }
    }

    // The element of a list or array, the value of a dictionary (whose keys are free); null for anything else.
    private static Type? ItemType(Type type)
    {
        if (type.IsArray)
        {
            return type.GetElementType();
        }

        var interfaces = type.IsInterface ? [type, .. type.GetInterfaces()] : type.GetInterfaces();
        var generic = interfaces.Where(i => i.IsGenericType).Select(i => (Definition: i.GetGenericTypeDefinition(), Arguments: i.GetGenericArguments())).ToList();
        foreach (var (definition, arguments) in generic)
        {
            if (definition == typeof(IDictionary<,>) || definition == typeof(IReadOnlyDictionary<,>))
            {
                return arguments[1];
            }
        }

        return generic.FirstOrDefault(g => g.Definition == typeof(IEnumerable<>)).Arguments?[0];
    }

    private static string Describe(Type type) => type switch
    {
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(int) || type == typeof(long) || type == typeof(short) || type == typeof(uint) || type == typeof(ulong) => "a whole number",
        _ when type == typeof(double) || type == typeof(float) || type == typeof(decimal) => "a number",
        _ when type == typeof(TimeSpan) => "a time span (hh:mm:ss)",
        { IsEnum: true } => $"one of {string.Join(", ", Enum.GetNames(type))}",
        _ => $"a {type.Name}",
    };

    // Levenshtein distance, for the nearest valid key.
    private static int Distance(string a, string b)
    {
        var previous = Enumerable.Range(0, b.Length + 1).ToArray();
        for (var i = 1; i <= a.Length; i++)
        {
            var current = new int[b.Length + 1];
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            previous = current;
        }

        return previous[b.Length];
    }
}
