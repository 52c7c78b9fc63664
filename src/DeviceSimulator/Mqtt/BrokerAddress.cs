using System.Diagnostics.CodeAnalysis;

namespace DeviceSimulator.Mqtt;

internal enum BrokerTransport
{
    Tcp,
    WebSocket,
}

// The article's BROKER URL (mqtt://host:port), plus mqtts:// for TLS and ws(s):// for MQTT over WebSockets.
// Credentials in the URL are kept apart so the address can be printed safely.
internal sealed record BrokerAddress(BrokerTransport Transport, string Host, int Port, bool UseTls, string Path, string? Username, string? Password)
{
    public static BrokerAddress Parse(string value) =>
        TryParse(value, out var address, out var error) ? address : throw new FormatException(error);

    public static bool TryParse(string? value, [NotNullWhen(true)] out BrokerAddress? address, [NotNullWhen(false)] out string? error)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "the broker must be a URL such as mqtt://localhost:1883";
            return false;
        }

        // "localhost:1883" or "localhost" alone means plain MQTT, as mqtt.js reads it.
        var text = value.Contains("://", StringComparison.Ordinal) ? value.Trim() : "mqtt://" + value.Trim();
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            error = $"'{Redact(value)}' is not a URL such as mqtt://localhost:1883";
            return false;
        }

        (BrokerTransport Transport, bool Tls, int DefaultPort)? scheme = uri.Scheme.ToLowerInvariant() switch
        {
            "mqtt" or "tcp" => (BrokerTransport.Tcp, false, 1883),
            "mqtts" or "ssl" or "tls" => (BrokerTransport.Tcp, true, 8883),
            "ws" => (BrokerTransport.WebSocket, false, 80),
            "wss" => (BrokerTransport.WebSocket, true, 443),
            _ => null,
        };
        if (scheme is not { } s)
        {
            error = $"scheme '{uri.Scheme}' is not supported; use mqtt://, mqtts://, tcp://, ws:// or wss://";
            return false;
        }

        string? username = null, password = null;
        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            username = Uri.UnescapeDataString(parts[0]);
            password = parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : null;
        }

        var port = uri.IsDefaultPort || uri.Port <= 0 ? s.DefaultPort : uri.Port;
        address = new BrokerAddress(s.Transport, uri.Host, port, s.Tls, uri.AbsolutePath, username, password);
        error = null;
        return true;
    }

    public string WebSocketUri => $"{(UseTls ? "wss" : "ws")}://{Host}:{Port}{Path}";

    // Safe to log and to report in GET_CONFIG: never the credentials.
    public override string ToString() => Transport switch
    {
        BrokerTransport.Tcp => $"{(UseTls ? "mqtts" : "mqtt")}://{Host}:{Port}",
        _ => WebSocketUri,
    };

    private static string Redact(string value)
    {
        var at = value.IndexOf('@', StringComparison.Ordinal);
        var schemeEnd = value.IndexOf("://", StringComparison.Ordinal);
        return at > 0 ? (schemeEnd >= 0 ? value[..(schemeEnd + 3)] : "") + "***" + value[at..] : value;
    }
}
