using Microsoft.Data.Sqlite;

namespace IotGateway.Tests.Infrastructure;

// A device's readings as a second process sees them in the gateway's SQLite file: the rows, and the distinct message
// ids among them (equal when nothing was stored twice). The API's telemetryCount is a counter; the rows are the truth.
public static class StoredReadings
{
    public static (long Rows, long Distinct) Count(string databasePath, string deviceId)
    {
        using var connection = new SqliteConnection($"Data Source={databasePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """SELECT COUNT(*), COUNT(DISTINCT "MessageKey") FROM "Telemetry" WHERE "DeviceId" = $d""";
        command.Parameters.AddWithValue("$d", deviceId);
        using var reader = command.ExecuteReader();
        reader.Read();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }
}
