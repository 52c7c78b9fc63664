using System.Globalization;

namespace IotGateway.Tests.Security;

// The data folder holds every device's data and the API key: the gateway creates it owner-only (700) and its files
// 600 (the database with its WAL and shared-memory files, the retained messages, the key), whatever the umask.
public sealed class PrivateFilesTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [SkippableFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task TheDataFolderAndItsFilesAreTheOwnersOnly()
    {
        Skip.If(OperatingSystem.IsWindows(), "Unix file modes");
        using var work = new TempDirectory("iotgw-private-");
        // The test process's umask (typically 022) is the gateway's: a file created plainly would be 644.
        var probe = Path.Combine(work.Path, "probe");
        await File.WriteAllTextAsync(probe, "");
        var umaskAllowsOthers = (File.GetUnixFileMode(probe) & UnixFileMode.OtherRead) != 0;
        File.Delete(probe);

        var port = FreePort.OnLoopback();
        await using (var gateway = GatewayProcess.Start(BuiltGateway.Dll, work.Path, new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["Mqtt__Embedded__Port"] = port.ToString(CultureInfo.InvariantCulture),
        }))
        {
            await gateway.WaitUntilReadyAsync(Timeout);
            await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, "private-1");
            await device.PublishAsync(TopicRoots.Default.For("private-1").Register, "SIGN_IN", retain: true);
            await Eventually.UntilAsync(() => File.Exists(Path.Combine(work.Path, "data", "retained-messages.json")), Timeout,
                "the embedded broker saves the retained SIGN_IN");
            await Eventually.UntilAsync(() => File.Exists(Path.Combine(work.Path, "data", "gateway.db-wal")), Timeout, "SQLite has its WAL");

            var data = Path.Combine(work.Path, "data");
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
            foreach (var file in new[] { "gateway.db", "gateway.db-wal", "gateway.db-shm", "api-key", "retained-messages.json" })
            {
                Assert.True(File.GetUnixFileMode(Path.Combine(data, file)) == (UnixFileMode.UserRead | UnixFileMode.UserWrite),
                    $"{file} is {File.GetUnixFileMode(Path.Combine(data, file))} (umask lets others read: {umaskAllowsOthers})");
            }
        }
    }
}
