using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
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

        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            ArgumentList = { typeof(SimulatedDevice).Assembly.Location, "--interval", "0.5", "--online", "0.2" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment =
            {
                ["BROKER"] = $"mqtt://127.0.0.1:{broker.Port}",
                ["DEVICE_ID"] = "env-device-0042",
                ["DATA_TOPIC"] = topics.Data,
                ["CMD_REQ_TOPIC"] = topics.CommandRequest,
                ["CMD_RESP_TOPIC"] = topics.CommandResponse,
                ["REGISTER_TOPIC"] = topics.Register,
            },
        };
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await gateway.WaitForPresenceAsync("env-device-0042", "SIGN_IN", Deadline);
            var uuid = await gateway.SendCommandAsync("env-device-0042", "PING");
            Assert.Equal("PONG", (await gateway.WaitForAnswerAsync("env-device-0042", uuid, Deadline)).GetProperty("commandResult").GetString());
            await gateway.WaitForAsync(m => m.Topic == "blog/data/env-device-0042", Deadline, "a reading on the configured data topic");

            Assert.Equal(0, SendSignal(process.Id, SigInt));
            await process.WaitForExitAsync().WaitAsync(Deadline);

            await gateway.WaitForPresenceAsync("env-device-0042", "SIGN_OUT", Deadline);
            Assert.Equal(0, process.ExitCode);
            lock (output)
            {
                Assert.Contains("STARTING MQTT IOT DEVICE <env-device-0042>", output.ToString(), StringComparison.Ordinal);
                Assert.Contains("SENDING SIGN OUT MESSAGE", output.ToString(), StringComparison.Ordinal);
            }
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    private const int SigInt = 2;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);
}
