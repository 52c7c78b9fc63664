using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.Memory;

namespace IotGateway.Mqtt;

// The article's server is configured by BROKER, SERVER_ID and four *_TOPIC variables. They keep working
// unchanged: mapped onto our keys above appsettings.json and Mqtt__… variables, below the command line.
public static class ArticleEnvironment
{
    public static readonly IReadOnlyDictionary<string, string> Variables = new Dictionary<string, string>
    {
        ["BROKER"] = "Mqtt:Broker",
        ["SERVER_ID"] = "Mqtt:ClientId",
        ["DATA_TOPIC"] = "Mqtt:Topics:Data",
        ["CMD_REQ_TOPIC"] = "Mqtt:Topics:CommandRequest",
        ["CMD_RESP_TOPIC"] = "Mqtt:Topics:CommandResponse",
        ["REGISTER_TOPIC"] = "Mqtt:Topics:Register",
        ["SERVER_PORT"] = "Tcp:Port",
    };

    public static IConfigurationBuilder AddArticleEnvironmentVariables(this IConfigurationBuilder configuration)
    {
        var values = new Dictionary<string, string?>();
        foreach (var (variable, key) in Variables)
        {
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } value)
            {
                values[key] = value;
            }
        }

        var source = new MemoryConfigurationSource { InitialData = values };
        // Before the application's command line (the last one): the host's own command-line source comes
        // earlier, before appsettings.json, and inserting there would let the file override these variables.
        var commandLine = configuration.Sources.ToList().FindLastIndex(s => s is CommandLineConfigurationSource);
        if (commandLine >= 0)
        {
            configuration.Sources.Insert(commandLine, source);
        }
        else
        {
            configuration.Sources.Add(source);
        }

        return configuration;
    }
}
