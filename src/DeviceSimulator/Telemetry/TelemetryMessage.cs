using System.Buffers;
using System.Text.Json;

namespace DeviceSimulator.Telemetry;

// The article's DATA payload plus a unique messageId (the gateway drops redeliveries by it) and a timestamp:
// {"deviceId":…,"messageType":"DATA","temp":23.6,"lat":48.015722,"lng":-88.625528,"messageId":…,"ts":…}
internal sealed record TelemetryMessage(string DeviceId, string MessageId, DateTimeOffset Timestamp, SensorReading Reading)
{
    public byte[] ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>(192);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("deviceId", DeviceId);
            json.WriteString("messageType", "DATA");
            json.WriteNumber("temp", Reading.Temperature);
            json.WriteNumber("lat", Reading.Latitude);
            json.WriteNumber("lng", Reading.Longitude);
            json.WriteString("messageId", MessageId);
            json.WriteString("ts", Timestamp.UtcDateTime);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
