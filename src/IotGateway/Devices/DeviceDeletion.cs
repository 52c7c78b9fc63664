using IotGateway.Commands;
using IotGateway.Mqtt;
using MQTTnet;
using MQTTnet.Protocol;

namespace IotGateway.Devices;

/// <summary>What forgetting a device removed.</summary>
/// <param name="DeviceId">The device.</param>
/// <param name="ReadingsDeleted">Its stored readings, all deleted.</param>
/// <param name="CommandsDeleted">Its commands, all deleted (open ones are not sent any more).</param>
public sealed record ForgottenDevice(string DeviceId, long ReadingsDeleted, int CommandsDeleted);

// DELETE /api/devices/{id}: the retained SIGN_IN on the broker is cleared first (else the next session of the gateway
// would learn of the device again), then the device and its commands go in one transaction, then its readings in
// small transactions, as retention deletes, so ingest never waits long. Readings that arrive meanwhile are kept: the
// device is known again, as a new one.
public sealed partial class DeviceDeletion(
    GatewayDbContext db,
    DatabaseWriteGate writeGate,
    CommandCompletion completion,
    DeviceRegistry registry,
    MqttConnection connection,
    TopicLayout topics,
    ILogger<DeviceDeletion> logger)
{
    private const int ReadingsPerTransaction = 1000;

    // Null when the device is unknown. Throws BrokerUnavailableException when the retained message cannot be cleared.
    public async Task<ForgottenDevice?> ForgetAsync(string deviceId, CancellationToken cancellationToken)
    {
        if (!await db.DeviceExistsAsync(deviceId, cancellationToken))
        {
            return null;
        }

        await ClearRetainedPresenceAsync(deviceId, cancellationToken);

        // From here on the request's end does not stop it halfway.
        List<Guid> open;
        int commands;
        long? lastReading;
        using (await writeGate.EnterAsync(CancellationToken.None))
        {
            await using var transaction = await db.Database.BeginTransactionAsync(CancellationToken.None);
            open = await db.Commands.Where(c => c.DeviceId == deviceId && (c.Status == CommandStatus.Pending || c.Status == CommandStatus.Published))
                .Select(c => c.Id).ToListAsync(CancellationToken.None);
            commands = await db.Commands.Where(c => c.DeviceId == deviceId).ExecuteDeleteAsync(CancellationToken.None);
            await db.Devices.Where(d => d.Id == deviceId).ExecuteDeleteAsync(CancellationToken.None);
            lastReading = await db.Telemetry.Where(r => r.DeviceId == deviceId).MaxAsync(r => (long?)r.Id, CancellationToken.None);
            await transaction.CommitAsync(CancellationToken.None);
        }

        registry.SetPresence(deviceId, signedIn: false);
        completion.Finished(open);

        var readings = lastReading is { } last ? await DeleteReadingsAsync(deviceId, last) : 0;
        LogForgotten(deviceId, readings, commands);
        return new ForgottenDevice(deviceId, readings, commands);
    }

    private async Task ClearRetainedPresenceAsync(string deviceId, CancellationToken cancellationToken)
    {
        // An empty retained message removes the retained one (MQTT 3.1.1 §3.3.1.3, MQTT 5 §3.3.1.3).
        var clear = new MqttApplicationMessageBuilder()
            .WithTopic(topics.Register(deviceId))
            .WithPayload(Array.Empty<byte>())
            .WithRetainFlag()
            .WithQualityOfServiceLevel(MqttQualityOfServiceLevel.AtLeastOnce)
            .Build();
        MqttClientPublishResult result;
        try
        {
            result = await connection.PublishAsync(clear, cancellationToken);
        }
        catch (Exception ex) when (ex is not BrokerUnavailableException && !cancellationToken.IsCancellationRequested)
        {
            throw new BrokerUnavailableException($"Clearing the retained presence message failed: {ex.GetBaseException().Message}");
        }

        if (!result.IsSuccess && result.ReasonCode != MqttClientPublishReasonCode.NoMatchingSubscribers)
        {
            throw new BrokerUnavailableException($"The broker refused to clear the retained presence message: {result.ReasonCode} {result.ReasonString}");
        }
    }

    private async Task<long> DeleteReadingsAsync(string deviceId, long last)
    {
        long deleted = 0;
        while (true)
        {
            int count;
            using (await writeGate.EnterAsync(CancellationToken.None))
            {
                count = await db.Telemetry.Where(r => r.DeviceId == deviceId && r.Id <= last).OrderBy(r => r.Id).Take(ReadingsPerTransaction)
                    .ExecuteDeleteAsync(CancellationToken.None);
            }

            deleted += count;
            if (count < ReadingsPerTransaction)
            {
                return deleted;
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Device {DeviceId} forgotten: {Readings} readings and {Commands} commands deleted, its retained presence cleared")]
    private partial void LogForgotten(string deviceId, long readings, int commands);
}
