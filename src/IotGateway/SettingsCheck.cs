using IotGateway.Data;
using Microsoft.Extensions.Options;

namespace IotGateway;

// Every bound section is validated before the gateway acts on any of them (the API key store would otherwise
// create a key file for a gateway that is about to stop). A bad setting ends the process with one line that names
// the key, and exit code 78 (EX_CONFIG), instead of an unhandled-exception stack trace.
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
        catch (Exception e) when (IsSettingError(e))
        {
            foreach (var reason in Reasons(e))
            {
                logger.LogCritical("Invalid setting, the gateway stops: {Reason}", reason);
            }

            return false;
        }
    }

    // Validation failures, the configuration binder's errors (unknown key, a value of the wrong type) and our
    // connection string check; anything else (a bug) keeps its stack trace.
    private static bool IsSettingError(Exception e) => e switch
    {
        OptionsValidationException => true,
        AggregateException all => all.InnerExceptions.All(IsSettingError),
        InvalidSettingException => true,
        // The (reflection) configuration binder's own errors.
        InvalidOperationException => e.TargetSite?.DeclaringType?.Namespace == "Microsoft.Extensions.Configuration",
        _ => false,
    };

    private static IEnumerable<string> Reasons(Exception e) => e switch
    {
        AggregateException all => all.InnerExceptions.SelectMany(Reasons),
        OptionsValidationException invalid => invalid.Failures.Select(failure => InSection(invalid.OptionsType, failure)),
        _ => [e.Message],
    };

    // Data-annotation failures name the class and member ("'QueueCapacity' with the error ..."): say the section too.
    private static string InSection(Type optionsType, string failure) =>
        optionsType.GetField("Section")?.GetValue(null) is string section && !failure.Contains(section + ":", StringComparison.Ordinal)
            ? $"{section}: {failure}"
            : failure;
}

// A setting the gateway cannot work with, found outside the options validators (e.g. the connection string).
public sealed class InvalidSettingException(string message, Exception? inner = null) : InvalidOperationException(message, inner);
