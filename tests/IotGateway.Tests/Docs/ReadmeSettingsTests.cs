using System.ComponentModel;
using System.Reflection;
using System.Text.RegularExpressions;

namespace IotGateway.Tests.Docs;

// The README's settings tables hold every key the gateway reads, so a new setting cannot ship undocumented. The keys
// come from the options classes themselves (each has `const string Section`), walked the way the configuration binder
// and the settings check walk them: public settable properties, nested option classes, lists as `__N__`.
public sealed partial class ReadmeSettingsTests
{
    [Fact]
    public void EverySettingTheGatewayReadsIsInTheReadme()
    {
        var sections = typeof(IotGateway.Mqtt.MqttOptions).Assembly.GetTypes()
            .Select(t => (Type: t, Field: t.GetField("Section", BindingFlags.Public | BindingFlags.Static)))
            .Where(s => s.Field is { IsLiteral: true } && s.Field.FieldType == typeof(string))
            .Select(s => (s.Type, Name: (string)s.Field!.GetRawConstantValue()!))
            .ToList();
        Assert.True(sections.Count >= 7, $"Only {sections.Count} options classes with a Section constant were found.");

        var keys = sections.SelectMany(s => Leaves(s.Type, s.Name)).ToList();
        var documented = DocumentedKeys(File.ReadAllText(Path.Combine(Repository.Root, "README.md")));
        var missing = keys.Where(k => !documented.Contains(k)).ToList();

        Assert.True(missing.Count == 0,
            $"Settings the gateway reads that no README table names (add a row to the Configuration section): {string.Join(", ", missing)}");
    }

    [Fact]
    public void ShortFormsInATableRowBelongToTheKeyBeforeThem()
    {
        var documented = DocumentedKeys("| `Mqtt__Tls__CaFile`, `__ClientKey` | TLS |\n| `Api__Keys__N__Name`, `__Role` | keys |\n| `BROKER` | `Mqtt:Broker`: … |\n");

        Assert.Equal(["Api__Keys__N__Name", "Api__Keys__N__Role", "Mqtt__Broker", "Mqtt__Tls__CaFile", "Mqtt__Tls__ClientKey"],
            documented.Order(StringComparer.Ordinal));
    }

    // Environment forms (`Mqtt__Tls__CaFile`, then `__ClientKey` for a sibling) and colon forms (`Mqtt:Broker`) in
    // table rows, normalised to the environment form with list indexes as N.
    private static HashSet<string> DocumentedKeys(string markdown)
    {
        var keys = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var row in markdown.Split('\n').Where(l => l.StartsWith('|')))
        {
            string? parent = null;
            foreach (Match token in Code().Matches(row))
            {
                var text = token.Groups[1].Value.Replace(":", "__", StringComparison.Ordinal);
                if (text.StartsWith("__", StringComparison.Ordinal) && parent is not null)
                {
                    keys.Add(parent + text);
                }
                else if (KeyPath().IsMatch(text))
                {
                    keys.Add(text);
                    parent = text[..text.LastIndexOf("__", StringComparison.Ordinal)];
                }
            }
        }

        return keys;
    }

    private static IEnumerable<string> Leaves(Type type, string path)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0))
        {
            var propertyType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            var key = $"{path}__{property.Name}";
            if (IsScalar(propertyType))
            {
                if (property.SetMethod?.IsPublic == true)
                {
                    yield return key;
                }
            }
            else if (propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(List<>))
            {
                foreach (var leaf in Leaves(propertyType.GetGenericArguments()[0], key + "__N"))
                {
                    yield return leaf;
                }
            }
            else
            {
                foreach (var leaf in Leaves(propertyType, key))
                {
                    yield return leaf;
                }
            }
        }
    }

    private static bool IsScalar(Type type) => TypeDescriptor.GetConverter(type).CanConvertFrom(typeof(string));

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Code();

    [GeneratedRegex(@"^[A-Z][A-Za-z]+(__[A-Z][A-Za-z]*)+$")]
    private static partial Regex KeyPath();
}
