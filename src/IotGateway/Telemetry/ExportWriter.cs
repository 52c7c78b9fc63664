using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;

namespace IotGateway.Telemetry;

// A reading as exported: everything stored but the device id, which the request names.
public sealed record ExportRow(long Id, DateTimeOffset ReceivedAt, string Topic, PayloadFormat Format, string Payload, string? MessageKey);

// Writes exported readings into the response as they come from the database: nothing but the current row is held.
public abstract class ExportWriter(PipeWriter output, string deviceId)
{
    // Flushed to the client about this often, so memory stays flat and the client sees progress.
    private const int FlushBytes = 32 * 1024;

    protected PipeWriter Output { get; } = output;
    protected string DeviceId { get; } = deviceId;

    public static ExportWriter Create(string format, PipeWriter output, string deviceId) =>
        format == "csv" ? new CsvExportWriter(output, deviceId) : new NdjsonExportWriter(output, deviceId);

    public abstract void WriteStart();

    public abstract void Write(ExportRow row);

    // Waits for the client when a chunk is ready; false once it has gone.
    public async ValueTask<bool> FlushIfFullAsync(CancellationToken cancellationToken)
    {
        if (Output.UnflushedBytes < FlushBytes)
        {
            return true;
        }

        var result = await Output.FlushAsync(cancellationToken);
        return !result.IsCompleted && !result.IsCanceled;
    }

    protected void WriteUtf8(string text)
    {
        var span = Output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        Output.Advance(Encoding.UTF8.GetBytes(text, span));
    }
}

// RFC 4180: a header row, then one row per reading; the payload is one column holding the stored text (JSON as the
// device sent it, text, or base64 for binary). Payload fields are not spread over columns: readings of one device
// need not share their fields, and the columns would have to be known before the first row is written.
public sealed class CsvExportWriter(PipeWriter output, string deviceId) : ExportWriter(output, deviceId)
{
    public const string Header = "id,deviceId,receivedAt,topic,format,messageKey,payload";

    private readonly string _deviceField = Field(deviceId);

    public override void WriteStart() => WriteUtf8(Header + "\r\n");

    public override void Write(ExportRow row)
    {
        // Base64 cannot hold a formula (no parentheses, quotes or spaces), and a leading '+' is part of it.
        var payload = row.Format == PayloadFormat.Binary ? Field(row.Payload, guardFormula: false) : Field(row.Payload);
        WriteUtf8(string.Create(CultureInfo.InvariantCulture,
            $"{row.Id},{_deviceField},{ApiTime.ToText(row.ReceivedAt)},{Field(row.Topic)},{row.Format},{Field(row.MessageKey)},{payload}\r\n"));
    }

    // Quoted when it holds a comma, a quote or a line break; quotes doubled. Text a device chose that a spreadsheet
    // would run as a formula (=, +, -, @, tab or CR first, and not a number) gets a leading apostrophe, as OWASP
    // advises for CSV exports: an operator who opens the file must not run what a device wrote.
    internal static string Field(string? value, bool guardFormula = true)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "";
        }

        if (guardFormula && value[0] is '=' or '+' or '-' or '@' or '\t' or '\r'
            && !double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
        {
            value = "'" + value;
        }

        return value.AsSpan().IndexOfAny(",\"\r\n") < 0 ? value : $"\"{value.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";
    }
}

// One JSON object a line, the payload as JSON when it is (on one line, every token as sent), else a string.
public sealed class NdjsonExportWriter : ExportWriter
{
    private readonly Utf8JsonWriter _json;
    private readonly ArrayBufferWriter<byte> _payload = new(1024);

    public NdjsonExportWriter(PipeWriter output, string deviceId) : base(output, deviceId) =>
        _json = new Utf8JsonWriter(output);

    public override void WriteStart()
    {
    }

    public override void Write(ExportRow row)
    {
        _json.Reset(Output);
        _json.WriteStartObject();
        _json.WriteNumber("id", row.Id);
        _json.WriteString("deviceId", DeviceId);
        _json.WriteString("receivedAt", ApiTime.ToText(row.ReceivedAt));
        _json.WriteString("topic", row.Topic);
        _json.WriteString("format", row.Format.ToString());
        _json.WritePropertyName("payload");
        if (row.Format == PayloadFormat.Json && TryCompact(row.Payload, out var compact))
        {
            _json.WriteRawValue(compact, skipInputValidation: true);
        }
        else
        {
            _json.WriteStringValue(row.Payload);
        }

        if (row.MessageKey is not null)
        {
            _json.WriteString("messageKey", row.MessageKey);
        }

        _json.WriteEndObject();
        _json.Flush();
        Output.Write("\n"u8);
    }

    // The payload on one line; false when it is not JSON the gateway can serve as JSON (JsonText.Repair: repaired if needed).
    private bool TryCompact(string payload, out ReadOnlySpan<byte> compact)
    {
        compact = default;
        if (JsonText.Repair(Encoding.UTF8.GetBytes(payload)) is not { } json)
        {
            return false;
        }

        _payload.ResetWrittenCount();
        CompactJson.Write(json, _payload);
        compact = _payload.WrittenSpan;
        return true;
    }
}
