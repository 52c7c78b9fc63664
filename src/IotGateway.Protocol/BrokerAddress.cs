using System.Diagnostics.CodeAnalysis;

namespace IotGateway.Protocol;

public enum BrokerTransport
{
    Embedded,
    Tcp,
    WebSocket,
}

// A broker URL: the gateway's Mqtt:Broker and the device's BROKER. Credentials in the URL are kept apart so the
// address can be printed safely.
public sealed record BrokerAddress(BrokerTransport Transport, string Host, int Port, bool UseTls, string? Path, string? Username, string? Password)
{
    public const string EmbeddedKeyword = "embedded";

    public bool IsEmbedded => Transport == BrokerTransport.Embedded;

    public string WebSocketUri => $"{(UseTls ? "wss" : "ws")}://{Host}:{Port}{Path}";

    // A device's broker that must parse (tests, fixed addresses).
    public static BrokerAddress Parse(string value) =>
        TryParseDeviceBroker(value, out var address, out var error) ? address : throw new FormatException(error);

    // The gateway's Mqtt:Broker: "embedded" or a URL with its scheme.
    public static bool TryParse(string? value, [NotNullWhen(true)] out BrokerAddress? address, [NotNullWhen(false)] out string? error)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "must be 'embedded' or a URL such as mqtt://host:1883.";
            return false;
        }

        if (value.Equals(EmbeddedKeyword, StringComparison.OrdinalIgnoreCase))
        {
            address = new BrokerAddress(BrokerTransport.Embedded, "127.0.0.1", 0, false, null, null, null);
            error = null;
            return true;
        }

        return TryParseUrl(value, $"'{Redact(value)}' is not 'embedded' or a URL such as mqtt://host:1883.", out address, out error);
    }

    // A device's BROKER: a URL, where "localhost:1883" or "localhost" alone means plain MQTT, as mqtt.js reads it.
    public static bool TryParseDeviceBroker(string? value, [NotNullWhen(true)] out BrokerAddress? address, [NotNullWhen(false)] out string? error)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "the broker must be a URL such as mqtt://localhost:1883";
            return false;
        }

        var text = value.Contains("://", StringComparison.Ordinal) ? value.Trim() : "mqtt://" + value.Trim();
        return TryParseUrl(text, $"'{Redact(value)}' is not a URL such as mqtt://localhost:1883", out address, out error);
    }

    private static bool TryParseUrl(string value, string notAUrl, [NotNullWhen(true)] out BrokerAddress? address, [NotNullWhen(false)] out string? error)
    {
        address = null;
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            error = notAUrl;
            return false;
        }

        (BrokerTransport transport, bool tls, int defaultPort)? scheme = uri.Scheme.ToLowerInvariant() switch
        {
            "mqtt" or "tcp" => (BrokerTransport.Tcp, false, 1883),
            "mqtts" or "ssl" or "tls" => (BrokerTransport.Tcp, true, 8883),
            "ws" => (BrokerTransport.WebSocket, false, 80),
            "wss" => (BrokerTransport.WebSocket, true, 443),
            _ => null,
        };
        if (scheme is not { } s)
        {
            error = $"scheme '{uri.Scheme}' is not supported; use mqtt://, mqtts://, tcp://, ws:// or wss://.";
            return false;
        }

        string? user = null, password = null;
        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            var parts = uri.UserInfo.Split(':', 2);
            user = Uri.UnescapeDataString(parts[0]);
            password = parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : null;
        }

        var port = uri.IsDefaultPort || uri.Port <= 0 ? s.defaultPort : uri.Port;
        var path = s.transport == BrokerTransport.WebSocket ? uri.AbsolutePath : null;
        address = new BrokerAddress(s.transport, uri.Host, port, s.tls, path, user, password);
        error = null;
        return true;
    }

    // A URL that is safe to print: never the password.
    public override string ToString() => Transport switch
    {
        BrokerTransport.Embedded => EmbeddedKeyword,
        BrokerTransport.Tcp => $"{(UseTls ? "mqtts" : "mqtt")}://{UserPrefix}{Host}:{Port}",
        _ => $"{(UseTls ? "wss" : "ws")}://{UserPrefix}{Host}:{Port}{Path}",
    };

    private string UserPrefix => Username is null ? "" : $"{Username}:***@";

    // The text of a setting that did not parse, safe to print: the user stays, the password does not. Read as text,
    // not as a Uri, because it is printed exactly when it is not a URL (a password with '/' or '@' in it, a bad port).
    public static string Redact(string value)
    {
        var schemeEnd = value.IndexOf("://", StringComparison.Ordinal);
        var start = schemeEnd < 0 ? 0 : schemeEnd + 3;
        var at = value.LastIndexOf('@');
        if (at < start)
        {
            return value;
        }

        var user = value[start..at].Split(':')[0];
        return $"{value[..start]}{user}:***{value[at..]}";
    }
}
