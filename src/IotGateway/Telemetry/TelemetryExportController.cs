using System.Globalization;
using System.Text;
using IotGateway.Devices;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace IotGateway.Telemetry;

[ApiController]
[Tags("Telemetry")]
public sealed class TelemetryExportController(GatewayDbContext db, TimeProvider time) : ControllerBase
{
    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.Ordinal)
    {
        ["csv"] = "text/csv; charset=utf-8",
        ["ndjson"] = "application/x-ndjson",
    };

    private const string CsvExample = """
        id,deviceId,receivedAt,topic,format,messageKey,payload
        1041,sensor-1,2026-11-25T10:15:03.501Z,iot/data/sensor-1,Json,r-17,"{""temp"":21.5,""sensors"":{""humidity"":40},""messageId"":""r-17""}"
        1042,sensor-1,2026-11-25T10:15:18.502Z,iot/data/sensor-1,Text,,battery low

        """;

    private const string NdjsonExample = """
        {"id":1041,"deviceId":"sensor-1","receivedAt":"2026-11-25T10:15:03.501Z","topic":"iot/data/sensor-1","format":"Json","payload":{"temp":21.5,"sensors":{"humidity":40},"messageId":"r-17"},"messageKey":"r-17"}
        {"id":1042,"deviceId":"sensor-1","receivedAt":"2026-11-25T10:15:18.502Z","topic":"iot/data/sensor-1","format":"Text","payload":"battery low"}

        """;

    /// <summary>Every reading of a device in a range, oldest first, as a CSV or NDJSON download streamed from the database.</summary>
    /// <remarks>
    /// The readings are written as they are read, so an export of millions of readings needs no more memory than one
    /// of ten. The file name is in Content-Disposition (sensor-1-telemetry-20261125T110000Z.csv).
    ///
    /// CSV (RFC 4180, UTF-8, CRLF): a header row `id,deviceId,receivedAt,topic,format,messageKey,payload`, then one row a
    /// reading. The payload is one column holding the stored text (the JSON as the device sent it, text, or base64
    /// for binary), not spread over columns: readings need not share their fields.
    ///
    ///     id,deviceId,receivedAt,topic,format,messageKey,payload
    ///     1041,sensor-1,2026-11-25T10:15:03.501Z,iot/data/sensor-1,Json,r-17,"{""temp"":21.5,""sensors"":{""humidity"":40}}"
    ///
    /// NDJSON: one JSON object a line, the payload as JSON (on one line) when it is JSON, else a string.
    ///
    ///     {"id":1041,"deviceId":"sensor-1","receivedAt":"2026-11-25T10:15:03.501Z","topic":"iot/data/sensor-1","format":"Json","payload":{"temp":21.5,"sensors":{"humidity":40}},"messageKey":"r-17"}
    /// </remarks>
    /// <param name="deviceId">The device, exactly one MQTT topic level.</param>
    /// <param name="format">csv (default) or ndjson.</param>
    /// <param name="from">Only readings received at or after this time (ISO 8601). Default: the first.</param>
    /// <param name="to">Only readings received before this time (ISO 8601). Default: now.</param>
    /// <param name="cancellationToken">Aborts the download.</param>
    /// <response code="200">The readings, streamed.</response>
    /// <response code="400">Invalid device id, format or range.</response>
    /// <response code="404">The gateway has never seen this device.</response>
    [HttpGet("api/devices/{deviceId}/telemetry/export")]
    [TextResponse("text/csv", CsvExample)]
    [TextResponse("application/x-ndjson", NdjsonExample)]
    [ProducesResponseType(StatusCodes.Status200OK)]
    [ProducesResponseType<ValidationProblemDetails>(StatusCodes.Status400BadRequest)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status404NotFound)]
    public async Task<IActionResult> Export([DeviceId] string deviceId, [FromQuery] string? format, [FromQuery] DateTimeOffset? from,
        [FromQuery] DateTimeOffset? to, CancellationToken cancellationToken)
    {
        format ??= "csv";
        if (!ContentTypes.TryGetValue(format, out var contentType))
        {
            ModelState.AddModelError(nameof(format), "format must be csv or ndjson.");
        }

        if (from is not null && to is not null && from > to)
        {
            ModelState.AddModelError(nameof(from), "from must not be later than to.");
        }

        if (!ModelState.IsValid)
        {
            return ValidationProblem(ModelState);
        }

        if (!await db.DeviceExistsAsync(deviceId, cancellationToken))
        {
            return this.UnknownDeviceProblem(deviceId);
        }

        var end = to ?? time.GetUtcNow();
        var query = db.Telemetry.AsNoTracking().Where(r => r.DeviceId == deviceId && r.ReceivedAt < end);
        if (from is { } f)
        {
            query = query.Where(r => r.ReceivedAt >= f);
        }

        Response.ContentType = contentType;
        Response.Headers.ContentDisposition = Disposition(deviceId, from, end, format);
        HttpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var writer = ExportWriter.Create(format, Response.BodyWriter, deviceId);
        writer.WriteStart();
        try
        {
            await foreach (var row in query.OrderBy(r => r.Id)
                .Select(r => new ExportRow(r.Id, r.ReceivedAt, r.Topic, r.Format, r.Payload, r.MessageKey))
                .AsAsyncEnumerable().WithCancellation(cancellationToken))
            {
                writer.Write(row);
                if (!await writer.FlushIfFullAsync(cancellationToken))
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client left mid-download.
        }

        return new EmptyResult();
    }

    // attachment; filename="sensor-1-telemetry-20261125T110000Z.csv", with filename* for ids beyond ASCII.
    private static string Disposition(string deviceId, DateTimeOffset? from, DateTimeOffset to, string extension)
    {
        var range = (from is { } f ? Stamp(f) + "-" : "") + Stamp(to);
        var name = $"{deviceId}-telemetry-{range}.{extension}";
        var ascii = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            ascii.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        }

        var header = new ContentDispositionHeaderValue("attachment") { FileName = ascii.ToString() };
        if (ascii.ToString() != name)
        {
            header.FileNameStar = name;
        }

        return header.ToString();
    }

    private static string Stamp(DateTimeOffset at) => at.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
}
