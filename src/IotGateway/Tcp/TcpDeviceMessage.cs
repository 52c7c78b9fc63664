using System.Buffers;
using System.Text.Json;
using IotGateway.Observability;

namespace IotGateway.Tcp;

public enum TcpMessageType
{
    SignUp,
    Data,
    CommandResponse,
}

// The two fields every message of the article's TCP device carries: who sends it and what it is.
// {"deviceId":"…","messageType":"SIGNUP" | "DATA" | "commandResp" (the article's text also shows "COMMAND_RESP"), …}
public readonly record struct TcpDeviceMessage(string DeviceId, TcpMessageType Type)
{
    public static bool TryRead(ReadOnlySequence<byte> json, out TcpDeviceMessage message, out string problem)
    {
        message = default;
        string? deviceId = null, messageType = null;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        try
        {
            reader.Read();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isDeviceId = reader.ValueTextEquals("deviceId"u8);
                var isMessageType = !isDeviceId && reader.ValueTextEquals("messageType"u8);
                if ((isDeviceId && deviceId is not null) || (isMessageType && messageType is not null))
                {
                    // Readers disagree on which of two equal keys counts (the console's JSON.parse takes the last):
                    // a device could pass the check with one id and be shown under another.
                    problem = $"the object names its {(isDeviceId ? "deviceId" : "messageType")} twice";
                    return false;
                }

                reader.Read();
                if ((isDeviceId || isMessageType) && reader.TokenType == JsonTokenType.String)
                {
                    // GetString throws on an unpaired surrogate escape: caught below like any malformed JSON.
                    var value = reader.GetString();
                    if (isDeviceId)
                    {
                        deviceId = value;
                    }
                    else
                    {
                        messageType = value;
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            problem = $"the object cannot be read ({ex.Message})";
            return false;
        }

        if (deviceId is null)
        {
            problem = "the object has no \"deviceId\" string";
            return false;
        }

        TcpMessageType? type = messageType switch
        {
            "SIGNUP" => TcpMessageType.SignUp,
            "DATA" => TcpMessageType.Data,
            "commandResp" or "COMMAND_RESP" => TcpMessageType.CommandResponse,
            _ => null,
        };
        if (type is null)
        {
            problem = messageType is null
                ? "the object has no \"messageType\" string"
                : $"messageType '{LogText.Printable(messageType, 40)}' is not SIGNUP, DATA, commandResp or COMMAND_RESP";
            return false;
        }

        message = new TcpDeviceMessage(deviceId, type.Value);
        problem = "";
        return true;
    }
}
