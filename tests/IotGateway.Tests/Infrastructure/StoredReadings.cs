namespace IotGateway.Tests.Infrastructure;

// A device's readings as a second process sees them in the gateway's database: the rows, and the distinct message
// ids among them (equal when nothing was stored twice). The API's telemetryCount is a counter; the rows are the truth.
public static class StoredReadings
{
    public static (long Rows, long Distinct) Count(string databasePath, string deviceId) => Count(GatewayStorage.Sqlite(databasePath), deviceId);

    public static (long Rows, long Distinct) Count(GatewayStorage storage, string deviceId) =>
        (storage.Scalar("""SELECT COUNT(*) FROM "Telemetry" WHERE "DeviceId" = $d""", deviceId),
         storage.Scalar("""SELECT COUNT(DISTINCT "MessageKey") FROM "Telemetry" WHERE "DeviceId" = $d""", deviceId));
}
