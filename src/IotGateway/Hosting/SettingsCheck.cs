
namespace IotGateway.Hosting;

// Every bound section is validated before the gateway acts on any of them (the API key store would otherwise
// create a key file for a gateway that is about to stop). A bad setting ends the process with one line per problem
// that names the key, and exit code 78 (EX_CONFIG), instead of an unhandled-exception stack trace.
public static class SettingsCheck
{
    public const int ExitCode = 78;

    public static bool Passes(IServiceProvider services, ILogger logger)
    {
        try
        {
            services.GetService<IStartupValidator>()?.Validate();
            // The configured provider's connection string (SQLite: a file, not :memory:; PostgreSQL: Npgsql's form).
            StorageSetup.CheckConnectionString(services);
            return true;
        }
        catch (Exception e) when (Reasons(e, services.GetServices<SettingsSection>().ToList()) is { Count: > 0 } reasons)
        {
            foreach (var reason in reasons)
            {
                logger.LogCritical("Invalid setting, the gateway stops: {Reason}", reason);
            }

            logger.LogDebug(e, "The settings check failed");
            return false;
        }
    }

    // Settings errors are known by their type: options validation (which includes ConfigurationBinding's checks of
    // keys and values) and our own InvalidSettingException. Anything else (a bug) keeps its stack trace.
    private static List<string>? Reasons(Exception e, IReadOnlyList<SettingsSection> sections)
    {
        switch (e)
        {
            case OptionsValidationException invalid:
                return [.. invalid.Failures.Select(failure => InSection(invalid.OptionsType, failure, sections))];
            case InvalidSettingException invalid:
                return [invalid.Message];
            case AggregateException all:
                var inner = all.InnerExceptions.Select(x => Reasons(x, sections)).ToList();
                return inner.All(r => r is not null) ? [.. inner.SelectMany(r => r!)] : null;
            default:
                return null;
        }
    }

    // Data-annotation failures name the class and member ("'QueueCapacity' with the error ..."): say the section too.
    private static string InSection(Type optionsType, string failure, IReadOnlyList<SettingsSection> sections) =>
        sections.FirstOrDefault(s => s.OptionsType == optionsType)?.Name is { } section
        && !failure.Contains(section + ":", StringComparison.OrdinalIgnoreCase)
            ? $"{section}: {failure}"
            : failure;
}
