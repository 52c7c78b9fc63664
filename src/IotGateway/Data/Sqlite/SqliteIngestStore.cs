using IotGateway.Ingest;

namespace IotGateway.Data.Sqlite;

// One batch, one SQLite transaction through the write gate; statement by statement in arrival order (prepared once,
// the reading insert through SQLite's own API: see SqliteIngestStatements).
public sealed class SqliteIngestStore(DatabaseWriteGate writeGate) : IIngestStore
{
    public async Task StoreAsync(IngestBatch batch, CancellationToken cancellationToken)
    {
        await using var write = await WriteTransaction.BeginAsync(writeGate, cancellationToken);
        var sql = new SqliteIngestStatements(write);
        var readings = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var reading in batch.Readings)
        {
            reading.Stored = sql.InsertReading(reading.DeviceId, reading.ReceivedAt, reading.Topic, reading.Payload, reading.MessageKey);
            if (reading.Stored)
            {
                readings[reading.DeviceId] = readings.GetValueOrDefault(reading.DeviceId) + 1;
            }
        }

        foreach (var presence in batch.Presence)
        {
            presence.Applied = sql.SetPresence(presence);
        }

        foreach (var answer in batch.Answers)
        {
            SqliteCommandStore.Answer(write, answer, batch.Now);
        }

        foreach (var (deviceId, lastSeen) in batch.Devices)
        {
            sql.RecordActivity(deviceId, readings.GetValueOrDefault(deviceId), lastSeen, batch.Now);
        }

        write.Commit();
    }
}
