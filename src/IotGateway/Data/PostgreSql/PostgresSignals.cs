using IotGateway.Protocol;
using System.Text;
using System.Threading.Channels;
using Npgsql;

namespace IotGateway.Data.PostgreSql;

// The cluster signals over PostgreSQL's LISTEN/NOTIFY: one connection per instance listens (and comes back after a
// loss, then asks everyone to read the database again); notifications are sent from the pool, after the commit of
// what they announce, by one loop so callers never wait for them. A lost signal costs time, never data: waiters time
// out and read, and the dispatcher's scan finds every Pending command within seconds.
public sealed partial class PostgresSignals(PostgresConnectionString connectionString, NpgsqlDataSource dataSource, TimeProvider time,
    ILogger<PostgresSignals> logger) : BackgroundService, IClusterSignals
{
    private const string FinishedChannel = "iotgw_finished";
    private const string QueuedChannel = "iotgw_queued";
    private const string EventsChannel = "iotgw_events";

    private readonly Channel<(string Channel, string Payload)> _outgoing = Channel.CreateUnbounded<(string, string)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public event Action<IReadOnlyList<Guid>>? FinishedElsewhere;

    public event Action<string, IReadOnlyList<string>>? QueuedForOwner;

    public event Action<string>? EventReceived;

    public event Action? Resynchronise;

    // Completes when this instance first listens.
    public Task Listening => _listening.Task;

    public void CommandsFinished(IReadOnlyCollection<Guid> ids)
    {
        // 36 characters and a comma each: 200 ids stay well under the 8000-byte limit.
        foreach (var chunk in ids.Chunk(200))
        {
            Send(FinishedChannel, string.Join(',', chunk));
        }
    }

    public void CommandsQueued(string owner, IReadOnlyCollection<string> deviceIds)
    {
        var payload = new StringBuilder(owner);
        var ownerBytes = Encoding.UTF8.GetByteCount(owner);
        var bytes = ownerBytes;
        foreach (var deviceId in deviceIds)
        {
            var more = Encoding.UTF8.GetByteCount(deviceId) + 1;
            if (bytes + more > ClusterSignalLimits.MaxEventBytes)
            {
                Send(QueuedChannel, payload.ToString());
                payload.Clear().Append(owner);
                bytes = ownerBytes;
            }

            payload.Append('\n').Append(deviceId);
            bytes += more;
        }

        Send(QueuedChannel, payload.ToString());
    }

    public void PublishEvent(string json)
    {
        if (Encoding.UTF8.GetByteCount(json) > ClusterSignalLimits.MaxEventBytes)
        {
            throw new ArgumentException($"An event is at most {ClusterSignalLimits.MaxEventBytes} bytes of UTF-8; send a reference to larger data.", nameof(json));
        }

        Send(EventsChannel, json);
    }

    private void Send(string channel, string payload) => _outgoing.Writer.TryWrite((channel, payload));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var sending = SendLoopAsync();
        try
        {
            await ListenLoopAsync(stoppingToken);
        }
        finally
        {
            _outgoing.Writer.TryComplete();
            await sending;
        }
    }

    private async Task ListenLoopAsync(CancellationToken stoppingToken)
    {
        var listen = new NpgsqlConnectionStringBuilder(connectionString.Value) { Pooling = false, KeepAlive = 10 }.ToString();
        var failures = 0;
        var connectedBefore = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(listen);
                await connection.OpenAsync(stoppingToken);
                connection.Notification += OnNotification;
                await using (var command = new NpgsqlCommand($"LISTEN {FinishedChannel}; LISTEN {QueuedChannel}; LISTEN {EventsChannel};", connection))
                {
                    await command.ExecuteNonQueryAsync(stoppingToken);
                }

                if (connectedBefore)
                {
                    LogListeningAgain();
                    Resynchronise?.Invoke();
                }

                connectedBefore = true;
                failures = 0;
                _listening.TrySetResult();
                while (true)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                var delay = Backoff.Delay(TimeSpan.FromSeconds(0.25), TimeSpan.FromSeconds(10), failures++);
                LogListenFailed(delay.TotalSeconds, ex.GetBaseException().Message);
                await Task.Delay(delay, time, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private async Task SendLoopAsync()
    {
        while (await _outgoing.Reader.WaitToReadAsync())
        {
            var pending = new List<(string Channel, string Payload)>();
            while (pending.Count < 256 && _outgoing.Reader.TryRead(out var item))
            {
                pending.Add(item);
            }

            try
            {
                await using var batch = dataSource.CreateBatch();
                foreach (var (channel, payload) in pending)
                {
                    batch.BatchCommands.Add(PostgresSql.Statement("SELECT pg_notify($1, $2)", PostgresSql.Text(channel), PostgresSql.Text(payload)));
                }

                await batch.ExecuteNonQueryAsync();
            }
            catch (Exception ex)
            {
                LogSendFailed(pending.Count, ex.GetBaseException().Message);
            }
        }
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        try
        {
            switch (e.Channel)
            {
                case FinishedChannel:
                    FinishedElsewhere?.Invoke([.. e.Payload.Split(',').Select(Guid.Parse)]);
                    break;
                case QueuedChannel:
                    var lines = e.Payload.Split('\n');
                    QueuedForOwner?.Invoke(lines[0], lines[1..]);
                    break;
                case EventsChannel:
                    EventReceived?.Invoke(e.Payload);
                    break;
            }
        }
        catch (Exception ex)
        {
            LogBadNotification(e.Channel, ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Not listening for other instances' signals; retrying in {DelaySeconds:0.0} s: {Reason}")]
    private partial void LogListenFailed(double delaySeconds, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Listening for other instances' signals again; waiters and lanes read the database again")]
    private partial void LogListeningAgain();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not signal {Count} changes to the other instances (they find them by their next read): {Reason}")]
    private partial void LogSendFailed(int count, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ignored a signal on {Channel}: {Reason}")]
    private partial void LogBadNotification(string channel, string reason);
}
