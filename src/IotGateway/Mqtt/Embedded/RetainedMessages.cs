using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using MQTTnet;
using MQTTnet.Protocol;
using MQTTnet.Server;

namespace IotGateway.Mqtt.Embedded;

// The retained messages (the devices' SIGN_IN / SIGN_OUT): kept here with the time they arrived, so that they
// expire as their Message Expiry Interval says (the article's SIGN_IN: 300 s) and are sent with what remains of it,
// and saved to a file so that they survive a restart. MQTTnet's own store mirrors them: it finds the ones a new
// subscription matches, and the broker sends them from here.
internal sealed partial class RetainedMessages(string path, ILogger logger)
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _saving = new(1, 1);
    private int _changed;

    public MqttServer? Server { get; set; }

    public Entry? Find(string topic) => _entries.TryGetValue(topic, out var entry) ? entry : null;

    // At start: what the file holds and has not expired, for MQTTnet's store.
    public List<MqttApplicationMessage> Load(DateTimeOffset now)
    {
        if (!File.Exists(path))
        {
            return [];
        }

        try
        {
            using var file = File.OpenRead(path);
            foreach (var stored in JsonSerializer.Deserialize<List<StoredRetainedMessage>>(file) ?? [])
            {
                if (stored.ExpiresAt <= now)
                {
                    Interlocked.Exchange(ref _changed, 1);
                    continue;
                }

                var message = new MqttApplicationMessage
                {
                    Topic = stored.Topic,
                    Payload = new ReadOnlySequence<byte>(stored.Payload),
                    QualityOfServiceLevel = stored.Qos,
                    Retain = true,
                };
                _entries[stored.Topic] = new Entry(message, stored.ExpiresAt, ForwardedProperties.FromStored(stored.Properties));
            }

            LogLoaded(_entries.Count, path);
        }
        catch (Exception ex) when (ex is JsonException or IOException or UnauthorizedAccessException)
        {
            LogLoadFailed(path, ex.Message);
        }

        return _entries.Values.Select(e => e.Message).ToList();
    }

    // A retained publish: replaces (or, with an empty payload, deletes) the topic's message.
    public async Task StoreAsync(MqttApplicationMessage message, DateTimeOffset now)
    {
        if (message.Payload.IsEmpty)
        {
            _entries.TryRemove(message.Topic, out _);
        }
        else
        {
            _entries[message.Topic] = new Entry(message, Delivery.ExpiryOf(message.MessageExpiryInterval, now), ForwardedProperties.From(message));
        }

        Interlocked.Exchange(ref _changed, 1);
        await UpdateServerAsync(message);
    }

    public async Task RemoveExpiredAsync(DateTimeOffset now)
    {
        foreach (var (topic, entry) in _entries)
        {
            if (entry.ExpiresAt <= now && _entries.TryRemove(new KeyValuePair<string, Entry>(topic, entry)))
            {
                Interlocked.Exchange(ref _changed, 1);
                await UpdateServerAsync(new MqttApplicationMessage { Topic = topic, Retain = true });
            }
        }
    }

    public async Task SaveIfChangedAsync()
    {
        if (Volatile.Read(ref _changed) == 0)
        {
            return;
        }

        await _saving.WaitAsync();
        try
        {
            Interlocked.Exchange(ref _changed, 0);
            var stored = _entries.Values.Select(e => new StoredRetainedMessage(e.Message.Topic, e.Message.Payload.ToArray(), e.Message.QualityOfServiceLevel,
                e.ExpiresAt, e.Properties?.ToStored())).ToList();
            Security.PrivateFiles.CreateFolder(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var temporary = path + ".tmp";
            await using (var file = Security.PrivateFiles.Create(temporary))
            {
                await JsonSerializer.SerializeAsync(file, stored);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Interlocked.Exchange(ref _changed, 1);
            LogSaveFailed(ex.Message);
        }
        finally
        {
            _saving.Release();
        }
    }

    private async Task UpdateServerAsync(MqttApplicationMessage message)
    {
        try
        {
            if (Server is { IsStarted: true } server)
            {
                await server.UpdateRetainedMessageAsync(message);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or ObjectDisposedException)
        {
            // Stopping: the file keeps it.
        }
    }

    internal sealed record Entry(MqttApplicationMessage Message, DateTimeOffset? ExpiresAt, ForwardedProperties? Properties);

    // The file's form; ExpiresAt and Properties are absent in files written before expiry was honoured.
    private sealed record StoredRetainedMessage(string Topic, byte[] Payload, MqttQualityOfServiceLevel Qos,
        DateTimeOffset? ExpiresAt = null, StoredProperties? Properties = null);

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded {Count} retained messages from {Path}")]
    private partial void LogLoaded(int count, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot read retained messages from {Path}: {Reason}")]
    private partial void LogLoadFailed(string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cannot save retained messages: {Reason}")]
    private partial void LogSaveFailed(string reason);
}
