namespace IotGateway.Bench.Infrastructure;

/// <summary>The Mosquitto of one benchmark, and the command-line clients next to it.</summary>
public static class BenchBroker
{
    /// <summary>
    /// In-memory sessions, no limits on queued or in-flight messages or connections (so the broker is never what
    /// drops or throttles), and no log line per connect (thousands of devices would fill the log).
    /// </summary>
    public static readonly MosquittoBrokerOptions Options = new() { Persistence = false, ConnectionMessages = false };

    public static async Task<MosquittoBroker> StartAsync(CancellationToken cancellationToken)
    {
        if (!MosquittoBroker.IsInstalled)
        {
            throw new BenchFailure(MosquittoBroker.NotInstalledMessage);
        }

        return await MosquittoBroker.StartAsync(Options, cancellationToken);
    }

    /// <summary>A command-line tool next to the broker (mosquitto_sub, mosquitto_pub).</summary>
    public static string ClientTool(string name) =>
        MosquittoBroker.FindTool(name) ?? throw new BenchFailure($"{name} is not installed: apt-get install mosquitto-clients.");
}
