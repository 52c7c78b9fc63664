using System.Buffers;
using System.Globalization;
using System.Text;
using MQTTnet.Formatter;

namespace IotGateway.Tests.Infrastructure;

/// <summary>A message a <see cref="TestMqttClient"/> received (payload copied out of MQTTnet's buffers).</summary>
public sealed record ReceivedMessage(
    string Topic,
    string Payload,
    bool Retain,
    MqttQualityOfServiceLevel QualityOfService,
    byte[] PayloadBytes,
    uint MessageExpiryInterval,
    string? ContentType,
    string? ResponseTopic,
    byte[]? CorrelationData,
    IReadOnlyList<KeyValuePair<string, string>> UserProperties,
    DateTimeOffset ReceivedAt)
{
    /// <summary>MQTT 5 Subscription Identifiers of the subscriptions it matched (empty when none).</summary>
    public IReadOnlyList<uint> SubscriptionIdentifiers { get; init; } = [];

    /// <summary>MQTT 5 Payload Format Indicator.</summary>
    public MqttPayloadFormatIndicator PayloadFormat { get; init; }

    /// <summary>The DUP flag: the broker sent it before.</summary>
    public bool Dup { get; init; }

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Topic} [{QualityOfService}{(Retain ? ", retained" : "")}] {Payload}");
}

/// <summary>The broker refused the connection (a CONNACK with an error code; MQTTnet 5 does not throw for that).</summary>
public sealed class MqttConnectRefusedException(string clientId, MqttClientConnectResult result)
    : Exception($"The broker refused client '{clientId}': {result.ResultCode}{(string.IsNullOrEmpty(result.ReasonString) ? "" : " (" + result.ReasonString + ")")}.")
{
    public MqttClientConnectResultCode ResultCode => Result.ResultCode;

    public MqttClientConnectResult Result { get; } = result;
}

/// <summary>
/// A thin MQTTnet 5 client for tests that play a device or an observer. It records every message
/// it receives (the handler is attached before connecting, so a persistent session's backlog is
/// not lost) and lets a test wait for one with a deadline.
/// </summary>
public sealed class TestMqttClient : IAsyncDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly Lock _gate = new();
    private readonly List<ReceivedMessage> _received = [];
    private readonly List<(Func<ReceivedMessage, bool> Match, TaskCompletionSource<ReceivedMessage> Done)> _waiters = [];
    private readonly MqttClientOptions _options;
    private IMqttClient _client;
    private bool _disposed;

    private TestMqttClient(MqttClientOptions options)
    {
        _options = options;
        _client = CreateClient();
    }

    public string ClientId => _options.ClientId;

    /// <summary>The underlying MQTTnet client (replaced by <see cref="ReconnectAsync"/>).</summary>
    public IMqttClient Client => _client;

    /// <summary>The options it connects with.</summary>
    public MqttClientOptions Options => _options;

    /// <summary>The last CONNACK (e.g. <c>IsSessionPresent</c>).</summary>
    public MqttClientConnectResult? ConnectResult { get; private set; }

    public bool IsConnected => _client.IsConnected;

    /// <summary>A snapshot of everything received so far, in arrival order.</summary>
    public IReadOnlyList<ReceivedMessage> ReceivedMessages
    {
        get
        {
            lock (_gate)
            {
                return [.. _received];
            }
        }
    }

    /// <summary>
    /// Connects to <paramref name="host"/>:<paramref name="port"/> with a stable client id, clean
    /// start, MQTT 5 and a 10 s timeout; <paramref name="configure"/> runs last and can change
    /// any of it (<c>WithCleanStart(false)</c>, <c>WithSessionExpiryInterval</c>, <c>WithProtocolVersion</c>,
    /// <c>WithWillTopic</c>..., <c>WithCredentials</c>, <c>WithTlsOptions</c>). Throws
    /// <see cref="MqttConnectRefusedException"/> when the broker refuses.
    /// </summary>
    public static async Task<TestMqttClient> ConnectAsync(
        string host,
        int port,
        string clientId,
        Action<MqttClientOptionsBuilder>? configure = null,
        CancellationToken ct = default)
    {
        var builder = new MqttClientOptionsBuilder()
            .WithTcpServer(host, port)
            .WithClientId(clientId)
            .WithCleanStart(true)
            .WithProtocolVersion(MqttProtocolVersion.V500)
            .WithTimeout(DefaultTimeout);
        configure?.Invoke(builder);

        var client = new TestMqttClient(builder.Build());
        try
        {
            await client.ConnectCoreAsync(ct).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Connects as the article's device: its id as client id, a persistent session (clean start off, unless asked),
    /// and a Last Will that is a retained QoS 2 <c>SIGN_OUT</c> on <c>iot/register/{deviceId}</c>.
    /// </summary>
    public static Task<TestMqttClient> ConnectArticleDeviceAsync(string host, int port, string deviceId, bool cleanStart = false,
        MqttProtocolVersion protocol = MqttProtocolVersion.V500) =>
        ConnectAsync(host, port, deviceId, o =>
        {
            o.WithProtocolVersion(protocol)
                .WithWillTopic(TopicRoots.Default.For(deviceId).Register)
                .WithWillPayload("SIGN_OUT")
                .WithWillRetain()
                .WithWillQualityOfServiceLevel(MqttQualityOfServiceLevel.ExactlyOnce);
            if (protocol == MqttProtocolVersion.V500)
            {
                o.WithCleanStart(cleanStart).WithSessionExpiryInterval(3600);
            }
            else
            {
                o.WithCleanSession(cleanStart);
            }
        });

    /// <summary>Connects to the broker's plain listener.</summary>
    public static Task<TestMqttClient> ConnectAsync(
        MosquittoBroker broker,
        string clientId,
        Action<MqttClientOptionsBuilder>? configure = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(broker);
        return ConnectAsync(broker.Host, broker.Port, clientId, configure, ct);
    }

    /// <summary>Subscribes and checks that the broker granted the subscription.</summary>
    public async Task SubscribeAsync(
        string topicFilter,
        MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.ExactlyOnce,
        CancellationToken ct = default)
    {
        var options = new MqttClientSubscribeOptionsBuilder()
            .WithTopicFilter(topicFilter, qos)
            .Build();
        using var timeout = Timeout(ct);
        var result = await _client.SubscribeAsync(options, timeout.Token).ConfigureAwait(false);
        foreach (var item in result.Items)
        {
            if (item.ResultCode is not (MqttClientSubscribeResultCode.GrantedQoS0
                or MqttClientSubscribeResultCode.GrantedQoS1
                or MqttClientSubscribeResultCode.GrantedQoS2))
            {
                throw new InvalidOperationException(
                    $"Client '{ClientId}' could not subscribe to '{item.TopicFilter.Topic}': {item.ResultCode} {result.ReasonString}");
            }
        }
    }

    /// <summary>Publishes a UTF-8 payload and waits for the QoS flow to complete.</summary>
    public Task<MqttClientPublishResult> PublishAsync(
        string topic,
        string payload,
        MqttQualityOfServiceLevel qos = MqttQualityOfServiceLevel.ExactlyOnce,
        bool retain = false,
        CancellationToken ct = default)
    {
        var message = new MqttApplicationMessageBuilder()
            .WithTopic(topic)
            .WithPayload(payload)
            .WithQualityOfServiceLevel(qos)
            .WithRetainFlag(retain)
            .Build();
        return PublishAsync(message, ct);
    }

    /// <summary>Publishes any message; a reason code of 0x80 or above (a refusal) throws.
    /// "No matching subscribers" counts as success.</summary>
    public async Task<MqttClientPublishResult> PublishAsync(MqttApplicationMessage message, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        using var timeout = Timeout(ct);
        var result = await _client.PublishAsync(message, timeout.Token).ConfigureAwait(false);
        if ((int)result.ReasonCode >= 0x80)
        {
            throw new InvalidOperationException(
                $"Client '{ClientId}' publishing to '{message.Topic}' was refused: {result.ReasonCode} {result.ReasonString}");
        }

        return result;
    }

    /// <summary>
    /// The first message matching <paramref name="match"/>, including messages that arrived before
    /// this call. Throws <see cref="TimeoutException"/> listing what did arrive.
    /// </summary>
    public async Task<ReceivedMessage> WaitForMessageAsync(
        Func<ReceivedMessage, bool> match, TimeSpan timeout, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(match);
        TaskCompletionSource<ReceivedMessage> done;
        lock (_gate)
        {
            foreach (var message in _received)
            {
                if (match(message))
                {
                    return message;
                }
            }

            done = new TaskCompletionSource<ReceivedMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((match, done));
        }

        try
        {
            return await done.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"Client '{ClientId}' received no matching message within {timeout.TotalSeconds:0.###} s. Received {Describe(ReceivedMessages)}");
        }
        finally
        {
            lock (_gate)
            {
                _waiters.RemoveAll(w => w.Done == done);
            }
        }
    }

    /// <summary>The first message on exactly this topic.</summary>
    public Task<ReceivedMessage> WaitForMessageAsync(string topic, TimeSpan timeout, CancellationToken ct = default) =>
        WaitForMessageAsync(m => m.Topic == topic, timeout, ct);

    /// <summary>Until at least <paramref name="count"/> received messages match; returns them in arrival order.</summary>
    public async Task<IReadOnlyList<ReceivedMessage>> WaitForMessagesAsync(
        Func<ReceivedMessage, bool> match, int count, TimeSpan timeout, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(match);
        var matching = await Eventually.UntilAsync(
            () => Task.FromResult(ReceivedMessages.Where(match).ToList()),
            list => list.Count >= count,
            timeout,
            $"client '{ClientId}' received {count} matching message(s)",
            ct).ConfigureAwait(false);
        return matching;
    }

    /// <summary>Forgets the messages received so far.</summary>
    public void ClearReceivedMessages()
    {
        lock (_gate)
        {
            _received.Clear();
        }
    }

    /// <summary>A clean DISCONNECT (the broker discards the Last Will).</summary>
    public async Task DisconnectAsync(
        MqttClientDisconnectOptionsReason reason = MqttClientDisconnectOptionsReason.NormalDisconnection,
        CancellationToken ct = default)
    {
        if (!_client.IsConnected)
        {
            return;
        }

        using var timeout = Timeout(ct);
        await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().WithReason(reason).Build(), timeout.Token)
            .ConfigureAwait(false);
    }

    /// <summary>MQTT 5 only: a DISCONNECT with reason 0x04 that asks the broker to publish the Last Will anyway.</summary>
    public Task DisconnectWithWillAsync(CancellationToken ct = default) =>
        DisconnectAsync(MqttClientDisconnectOptionsReason.DisconnectWithWillMessage, ct);

    /// <summary>
    /// Ends the connection the way a crashed device does: the socket is closed without a
    /// DISCONNECT packet, so the broker publishes the Last Will. (MQTTnet's Dispose closes the
    /// transport without sending DISCONNECT.) <see cref="ReconnectAsync"/> can connect again.
    /// </summary>
    public Task DropConnectionAsync()
    {
        var client = _client;
        client.Dispose();
        _client = CreateClient();
        return Task.CompletedTask;
    }

    /// <summary>Connects again with the same options (same client id, clean start, will...),
    /// keeping the messages received so far. Returns the CONNACK (see <c>IsSessionPresent</c>).</summary>
    public async Task<MqttClientConnectResult> ReconnectAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_client.IsConnected)
        {
            await DropConnectionAsync().ConfigureAwait(false);
        }

        return await ConnectCoreAsync(ct).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            if (_client.IsConnected)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _client.DisconnectAsync(new MqttClientDisconnectOptionsBuilder().Build(), timeout.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or MQTTnet.Exceptions.MqttCommunicationException or InvalidOperationException)
        {
            // The connection is gone anyway.
        }
        finally
        {
            try
            {
                _client.Dispose();
            }
            catch (ObjectDisposedException)
            {
                // MQTTnet 5.2 can dispose its own cancellation source twice while a disconnect is cleaned up.
            }

            lock (_gate)
            {
                foreach (var waiter in _waiters)
                {
                    waiter.Done.TrySetCanceled();
                }

                _waiters.Clear();
            }
        }
    }

    public override string ToString() => $"TestMqttClient '{ClientId}' ({(IsConnected ? "connected" : "not connected")})";

    private IMqttClient CreateClient()
    {
        var client = new MqttClientFactory().CreateMqttClient();
        // Attached before ConnectAsync: a persistent session's backlog arrives the moment it connects.
        client.ApplicationMessageReceivedAsync += e =>
        {
            OnMessage(e.ApplicationMessage);
            return Task.CompletedTask;
        };
        return client;
    }

    private async Task<MqttClientConnectResult> ConnectCoreAsync(CancellationToken ct)
    {
        using var timeout = Timeout(ct);
        var result = await _client.ConnectAsync(_options, timeout.Token).ConfigureAwait(false);
        ConnectResult = result;
        if (result.ResultCode != MqttClientConnectResultCode.Success)
        {
            throw new MqttConnectRefusedException(ClientId, result);
        }

        return result;
    }

    private void OnMessage(MqttApplicationMessage m)
    {
        var bytes = m.Payload.IsEmpty ? [] : m.Payload.ToArray();
        var message = new ReceivedMessage(
            m.Topic,
            Encoding.UTF8.GetString(bytes),
            m.Retain,
            m.QualityOfServiceLevel,
            bytes,
            m.MessageExpiryInterval,
            m.ContentType,
            m.ResponseTopic,
            m.CorrelationData?.ToArray(),
            m.UserProperties?.Select(p => new KeyValuePair<string, string>(p.Name, Encoding.UTF8.GetString(p.ValueBuffer.Span))).ToList()
                ?? [],
            DateTimeOffset.UtcNow)
        {
            SubscriptionIdentifiers = m.SubscriptionIdentifiers?.ToList() ?? [],
            PayloadFormat = m.PayloadFormatIndicator,
            Dup = m.Dup,
        };

        List<TaskCompletionSource<ReceivedMessage>>? matched = null;
        lock (_gate)
        {
            _received.Add(message);
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                bool isMatch;
                try
                {
                    isMatch = _waiters[i].Match(message);
                }
                catch (Exception e)
                {
                    _waiters[i].Done.TrySetException(e);
                    _waiters.RemoveAt(i);
                    continue;
                }

                if (isMatch)
                {
                    (matched ??= []).Add(_waiters[i].Done);
                    _waiters.RemoveAt(i);
                }
            }
        }

        if (matched is not null)
        {
            foreach (var done in matched)
            {
                done.TrySetResult(message);
            }
        }
    }

    private CancellationTokenSource Timeout(CancellationToken ct)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(_options.Timeout);
        return cts;
    }

    private static string Describe(IReadOnlyList<ReceivedMessage> messages)
    {
        if (messages.Count == 0)
        {
            return "nothing.";
        }

        const int shown = 20;
        var lines = messages.TakeLast(shown).Select(m => "  " + m);
        var skipped = messages.Count > shown ? $" (last {shown} shown)" : "";
        return $"{messages.Count} message(s){skipped}:\n{string.Join('\n', lines)}";
    }
}
