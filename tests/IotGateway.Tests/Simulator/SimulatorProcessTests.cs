using DeviceSimulator.Devices;

namespace IotGateway.Tests.Simulator;

// The real program: the article's environment variables configure it, and Ctrl+C (SIGINT) signs out and exits 0.
public class SimulatorProcessTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public async Task ArticleEnvironmentVariablesConfigureTheDeviceAndSigintSignsOutWithExitCodeZero()
    {
        Skip.If(OperatingSystem.IsWindows(), "SIGINT is sent with kill(2)");
        await using var broker = await SimulatorBroker.StartAsync();
        var topics = new TopicRoots("blog/data", "blog/cmd/req", "blog/cmd/resp", "blog/register");
        await using var gateway = await GatewayStandIn.ConnectAsync(broker, topics);

        await using var simulator = SimulatorProcess.Start(new Dictionary<string, string>
        {
            ["BROKER"] = $"mqtt://127.0.0.1:{broker.Port}",
            ["DEVICE_ID"] = "env-device-0042",
            ["DATA_TOPIC"] = topics.Data,
            ["CMD_REQ_TOPIC"] = topics.CommandRequest,
            ["CMD_RESP_TOPIC"] = topics.CommandResponse,
            ["REGISTER_TOPIC"] = topics.Register,
        }, "--interval", "0.5", "--online", "0.2");

        await gateway.WaitForPresenceAsync("env-device-0042", "SIGN_IN", Deadline);
        var uuid = await gateway.SendCommandAsync("env-device-0042", "PING");
        Assert.Equal("PONG", (await gateway.WaitForAnswerAsync("env-device-0042", uuid, Deadline)).GetProperty("commandResult").GetString());
        await gateway.WaitForAsync(m => m.Topic == "blog/data/env-device-0042", Deadline, "a reading on the configured data topic");

        simulator.Signal(SimulatorProcess.SigInt);
        await simulator.WaitForExitAsync(Deadline);

        await gateway.WaitForPresenceAsync("env-device-0042", "SIGN_OUT", Deadline);
        Assert.Equal(0, simulator.ExitCode);
        Assert.Contains("STARTING MQTT IOT DEVICE <env-device-0042>", simulator.Output, StringComparison.Ordinal);
        Assert.Contains("SENDING SIGN OUT MESSAGE", simulator.Output, StringComparison.Ordinal);
    }

    // README: every setting is also a command-line option, and --help lists them with the article's variables.
    [Fact]
    public async Task HelpListsEveryOptionWithItsEnvironmentVariableAndAnUnknownOptionIsRefused()
    {
        await using (var help = SimulatorProcess.Start("--help"))
        {
            await help.WaitForExitAsync(Deadline);
            Assert.Equal(0, help.ExitCode);
            foreach (var (option, variable) in new[]
            {
                ("--broker", "BROKER"), ("--device-id", "DEVICE_ID"), ("--data-topic", "DATA_TOPIC"), ("--cmd-req-topic", "CMD_REQ_TOPIC"),
                ("--cmd-resp-topic", "CMD_RESP_TOPIC"), ("--register-topic", "REGISTER_TOPIC"), ("--username", "MQTT_USERNAME"), ("--password", "MQTT_PASSWORD"),
            })
            {
                Assert.Contains(help.Output.Split('\n'), line => line.TrimStart().StartsWith(option + " ", StringComparison.Ordinal)
                    && line.Contains($"[env: {variable}", StringComparison.Ordinal));
            }

            foreach (var option in new[] { "--interval", "--online", "--protocol", "--devices", "--always-online", "--max-connects", "--seed" })
            {
                Assert.Contains(help.Output.Split('\n'), line => line.TrimStart().StartsWith(option + " ", StringComparison.Ordinal));
            }
        }

        await using var wrong = SimulatorProcess.Start("--intervall", "5");
        await wrong.WaitForExitAsync(Deadline);
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains("Unrecognized command or argument '--intervall'", wrong.Output, StringComparison.Ordinal);
    }
}
