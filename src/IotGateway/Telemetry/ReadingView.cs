using System.Text.Json;

namespace IotGateway.Telemetry;

/// <summary>A stored telemetry reading.</summary>
/// <param name="Id">Its position in the store (increases with arrival).</param>
/// <param name="DeviceId">The device that sent it.</param>
/// <param name="ReceivedAt">When the gateway received it.</param>
/// <param name="Topic">The topic it arrived on.</param>
/// <param name="Format">Json (payload is the document), Text (payload is a string) or Binary (payload is base64).</param>
/// <param name="Payload">The reading.</param>
/// <param name="MessageKey">The device's id for the reading, used to drop redeliveries.</param>
public sealed record ReadingView(long Id, string DeviceId, DateTimeOffset ReceivedAt, string Topic, PayloadFormat Format, JsonElement Payload, string? MessageKey);

public static class ReadingViewMapping
{
    // Json.Parse serves whatever is stored: JSON stored before ingest repaired it is repaired here, or served as a string.
    public static ReadingView ToView(this TelemetryReading r) => new(r.Id, r.DeviceId, r.ReceivedAt, r.Topic, r.Format,
        r.Format == PayloadFormat.Json ? Json.Parse(r.Payload)!.Value : JsonSerializer.SerializeToElement(r.Payload), r.MessageKey);
}
