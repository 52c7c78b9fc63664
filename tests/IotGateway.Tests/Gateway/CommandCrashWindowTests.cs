using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace IotGateway.Tests.Gateway;

// The README's promise for commands under a crash, measured: the gateway SIGKILLed while a bulk command is going out.
// A command is published, then marked Published in the database; a kill between the two leaves it Pending, and the
// restarted gateway publishes it again. So a device may receive a command twice, and only one the database still had
// as Pending when the process died; every command reaches the device at least once.
public sealed class CommandCrashWindowTests(ITestOutputHelper output)
{
    private const int Devices = 2000;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(1000)]
    public async Task KilledDuringABulkCommandEachCommandArrivesOnceOrTwiceAndOnlyPendingOnesTwice(int receivedBeforeKill)
    {
        Requires.Mosquitto();
        await using var broker = await MosquittoBroker.StartAsync();
        using var data = new TempDirectory("iotgw-crash-commands-");
        var database = Path.Combine(data.Path, "gateway.db");
        var settings = new Dictionary<string, string>
        {
            ["BROKER"] = broker.Url,
            ["SERVER_ID"] = $"gw-crash-{Guid.NewGuid():N}",
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
            ["ConnectionStrings__Gateway"] = $"Data Source={database}",
            ["Mqtt__ReconnectMinDelaySeconds"] = "0.1",
            ["Api__Keys__0__Key"] = GatewayApp.OperatorKey,
            ["Api__Keys__0__Role"] = "Operator",
        };

        // One observer stands in for every device: it receives each command request, counted by uuid.
        await using var observer = await TestMqttClient.ConnectAsync(broker, "observer");
        await observer.SubscribeAsync(TopicRoots.Default.For("+").CommandRequest);

        Dictionary<Guid, string> statusAtKill;
        var gateway = GatewayProcess.Start(BuiltGateway.Dll, data.Path, settings);
        try
        {
            await gateway.WaitUntilReadyAsync(Timeout);
            await using (var devices = await TestMqttClient.ConnectAsync(broker, "signer"))
            {
                for (var i = 0; i < Devices; i++)
                {
                    await devices.PublishAsync(TopicRoots.Default.For($"crash-{i:D4}").Register, "SIGN_IN");
                }
            }

            await Eventually.UntilAsync(() => Count(database, """SELECT COUNT(*) FROM "Devices" WHERE "SignedIn" """) == Devices, Timeout, "every device is signed in");
            using var http = new HttpClient { BaseAddress = gateway.BaseAddress };
            http.DefaultRequestHeaders.Add("X-API-Key", GatewayApp.OperatorKey);
            // Killed from the observer's receive loop the moment the Nth command arrives: a poll would come too late.
            var seen = 0;
            var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            observer.Client.ApplicationMessageReceivedAsync += _ =>
            {
                if (Interlocked.Increment(ref seen) == receivedBeforeKill)
                {
                    // Said first: the POST can fail the moment the process dies, before this handler goes on.
                    killed.TrySetResult();
                    gateway.Kill();
                }

                return Task.CompletedTask;
            };
            try
            {
                using var post = await http.PostAsJsonAsync("/api/commands/bulk", new { command = "PING", signedIn = true });
                Assert.Equal(HttpStatusCode.Accepted, post.StatusCode);
            }
            catch (HttpRequestException) when (killed.Task.IsCompleted)
            {
                // Commands go out as they are committed, so the kill can come before the POST's answer: a command the
                // observer received was committed, which is all the rest of this test needs.
            }

            await killed.Task.WaitAsync(Timeout);
            await gateway.WaitForExitAsync(Timeout);
            statusAtKill = Statuses(database);
        }
        finally
        {
            await gateway.DisposeAsync();
        }

        var receivedAtKill = Received(observer).Count;
        await using var restarted = GatewayProcess.Start(BuiltGateway.Dll, data.Path, settings);
        await restarted.WaitUntilReadyAsync(Timeout);
        await Eventually.UntilAsync(() => Received(observer).Count == Devices && Count(database, """SELECT COUNT(*) FROM "Commands" WHERE "Status" = 'Pending' """) == 0,
            Timeout, "every command has reached the device and is marked Published");

        var received = Received(observer);
        var twice = received.Where(r => r.Value > 1).Select(r => r.Key).ToList();
        var pendingAtKill = statusAtKill.Count(s => s.Value == "Pending");
        output.WriteLine($"kill after {receivedBeforeKill} received: {receivedAtKill} distinct received at the kill, " +
            $"{statusAtKill.Count(s => s.Value == "Published")} marked Published, {pendingAtKill} Pending; {twice.Count} received twice");
        Assert.Equal(Devices, statusAtKill.Count);
        Assert.All(received.Values, count => Assert.InRange(count, 1, 2));
        Assert.All(twice, id => Assert.Equal("Pending", statusAtKill[id]));
    }

    private static Dictionary<Guid, int> Received(TestMqttClient observer) =>
        observer.ReceivedMessages.GroupBy(m => Guid.Parse(JsonDocument.Parse(m.Payload).RootElement.GetProperty("uuid").GetString()!))
            .ToDictionary(g => g.Key, g => g.Count());

    private static Dictionary<Guid, string> Statuses(string database)
    {
        using var connection = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """SELECT "Id", "Status" FROM "Commands" """;
        using var reader = command.ExecuteReader();
        var statuses = new Dictionary<Guid, string>();
        while (reader.Read())
        {
            statuses[Guid.Parse(reader.GetString(0))] = reader.GetString(1);
        }

        return statuses;
    }

    private static long Count(string database, string sql)
    {
        if (!File.Exists(database))
        {
            return -1;
        }

        try
        {
            using var connection = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            return (long)command.ExecuteScalar()!;
        }
        catch (SqliteException)
        {
            return -1; // not migrated yet
        }
    }
}
