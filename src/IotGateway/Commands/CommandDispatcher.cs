using System.Text.Json;
using System.Threading.Channels;
using IotGateway.Data;
using IotGateway.Mqtt;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Commands;

// The outbox: publishes Pending commands in the order they were queued, QoS 2, and marks them Published
// once the broker has completed the QoS 2 flow. While the broker is unreachable they simply stay Pending.
public sealed partial class CommandDispatcher(
    MqttConnection connection,
    TopicLayout topics,
    IServiceScopeFactory scopes,
    DatabaseWriteGate writeGate,
    IOptions<CommandOptions> options,
    IOptions<MqttOptions> mqttOptions,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<CommandDispatcher> logger) : BackgroundService
{
    // A safety net for commands written by something other than this process; new commands wake us at once.
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);

    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly bool _mqtt5 = mqttOptions.Value.UsesMqtt5;

    public void Wake() => _wake.Writer.TryWrite(true);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failedRounds = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await connection.WaitUntilConnectedAsync(stoppingToken);
                var round = await DispatchRoundAsync(stoppingToken);
                failedRounds = round == Round.Failed ? failedRounds + 1 : 0;
                if (round == Round.More)
                {
                    continue;
                }

                if (round == Round.Failed)
                {
                    // Usually the connection dropped: the next WaitUntilConnectedAsync holds until it is back.
                    // A growing pause keeps a broker that refuses publishes (an ACL, a quota) from being hammered.
                    var pause = TimeSpan.FromMilliseconds(Math.Min(PollInterval.TotalMilliseconds, 250 * Math.Pow(2, Math.Min(failedRounds - 1, 5))));
                    await Task.Delay(pause, time, stoppingToken);
                    continue;
                }

                using var poll = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                poll.CancelAfter(PollInterval);
                await _wake.Reader.ReadAsync(poll.Token);
            }
            catch (OperationCanceledException)
            {
                // Poll interval elapsed, or stopping.
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogDispatchFailed(ex.GetBaseException().Message);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    private enum Round
    {
        Idle,
        More,
        Failed,
    }

    private async Task<Round> DispatchRoundAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var now = time.GetUtcNow();
        var batchSize = options.Value.DispatchBatchSize;
        var pending = await db.Commands.AsNoTracking()
            .Where(c => c.Status == CommandStatus.Pending && c.ExpiresAt > now)
            .OrderBy(c => c.Sequence)
            .Take(batchSize)
            .ToListAsync(cancellationToken);
        if (pending.Count == 0)
        {
            return Round.Idle;
        }

        // One device's commands go out one after another, so it receives them in the order they were queued
        // (concurrent publishes may leave the client in any order); different devices' go out concurrently,
        // up to the connection's in-flight cap.
        var perDevice = await Task.WhenAll(pending.GroupBy(c => c.DeviceId, StringComparer.Ordinal)
            .Select(commands => PublishInOrderAsync(commands, now, cancellationToken)));
        var published = perDevice.SelectMany(done => done).ToList();
        if (published.Count > 0)
        {
            await MarkPublishedAsync(db, published);
        }

        return published.Count < pending.Count ? Round.Failed : pending.Count == batchSize ? Round.More : Round.Idle;
    }

    // Each command gets the time its own QoS 2 flow completed. A device may already have answered it (fast
    // devices answer before this update runs) or an operator cancelled it: then only PublishedAt is filled in.
    private async Task MarkPublishedAsync(GatewayDbContext db, List<(Guid Id, DateTimeOffset At)> published)
    {
        var transitions = 0;
        using (await writeGate.EnterAsync(CancellationToken.None))
        {
            await db.Database.OpenConnectionAsync();
            await using var transaction = await db.Database.BeginTransactionAsync();
            using var update = ((SqliteConnection)db.Database.GetDbConnection()).CreateCommand();
            update.Transaction = (SqliteTransaction)transaction.GetDbTransaction();
            update.CommandText = """
                UPDATE "Commands" SET "PublishedAt" = $at,
                    "Status" = CASE WHEN "Status" = 'Pending' THEN 'Published' ELSE "Status" END
                WHERE "Id" = $id AND "PublishedAt" IS NULL
                RETURNING "Status"
                """;
            var id = update.Parameters.Add("$id", SqliteType.Text);
            var at = update.Parameters.Add("$at", SqliteType.Integer);
            update.Prepare();
            foreach (var command in published)
            {
                id.Value = command.Id.ToString();
                at.Value = command.At.UtcTicks;
                if (update.ExecuteScalar() is nameof(CommandStatus.Published))
                {
                    transitions++;
                }
            }

            await transaction.CommitAsync();
        }

        metrics.CommandTransition(CommandStatus.Published, transitions);
    }

    private async Task<List<(Guid Id, DateTimeOffset At)>> PublishInOrderAsync(IEnumerable<Command> commands, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var published = new List<(Guid Id, DateTimeOffset At)>();
        foreach (var command in commands)
        {
            if (!await PublishAsync(command, now, cancellationToken))
            {
                // The rest wait for the next round, behind this one.
                break;
            }

            published.Add((command.Id, time.GetUtcNow()));
        }

        return published;
    }

    private async Task<bool> PublishAsync(Command command, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var builder = new MqttApplicationMessageBuilder()
            .WithTopic(topics.CommandRequest(command.DeviceId))
            .WithPayload(RequestPayload(command))
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce);
        if (_mqtt5)
        {
            // The broker drops it when the TTL runs out, so a device that returns late does not act on it.
            // Rounded down: the broker never keeps it longer than the gateway waits for it (1 s at the least).
            var remaining = (uint)Math.Max(1, Math.Floor((command.ExpiresAt - now).TotalSeconds));
            builder.WithMessageExpiryInterval(remaining).WithContentType("application/json");
        }

        try
        {
            var result = await connection.PublishAsync(builder.Build(), cancellationToken);
            if (result.ReasonCode == MqttClientPublishReasonCode.NoMatchingSubscribers)
            {
                LogNoSubscriber(command.Id, command.DeviceId);
                return true;
            }

            if (!result.IsSuccess)
            {
                LogPublishRefused(command.Id, command.DeviceId, result.ReasonCode, result.ReasonString);
                return false;
            }

            LogPublished(command.Id, command.DeviceId, command.Name);
            return true;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Not connected, or the connection dropped mid-flow: it stays Pending and goes out after reconnect.
            LogPublishFailed(command.Id, command.DeviceId, ex.GetBaseException().Message);
            return false;
        }
    }

    internal static byte[] RequestPayload(Command command)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("uuid", command.Id.ToString());
            json.WriteString("command", command.Name);
            if (command.Payload is not null)
            {
                json.WritePropertyName("payload");
                json.WriteRawValue(command.Payload, skipInputValidation: true);
            }

            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Command {CommandId} published to {DeviceId}: {Command}")]
    private partial void LogPublished(Guid commandId, string deviceId, string command);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Command {CommandId} published but no session subscribes to {DeviceId}'s command topic; it expires unless the device subscribes")]
    private partial void LogNoSubscriber(Guid commandId, string deviceId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broker refused command {CommandId} for {DeviceId}: {ReasonCode} {ReasonString}")]
    private partial void LogPublishRefused(Guid commandId, string deviceId, MqttClientPublishReasonCode reasonCode, string? reasonString);

    [LoggerMessage(Level = LogLevel.Information, Message = "Command {CommandId} for {DeviceId} stays Pending: {Reason}")]
    private partial void LogPublishFailed(Guid commandId, string deviceId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Dispatch round failed; retrying: {Reason}")]
    private partial void LogDispatchFailed(string reason);
}
