using System.Diagnostics.CodeAnalysis;

namespace IotGateway.Mqtt;

public enum BrokerTransport
{
    Embedded,
    Tcp,
    WebSocket,
}

// The parsed form of Mqtt:Broker / BROKER. Credentials in the URL are kept apart so the URL can be logged safely.
public sealed record BrokerAddress(BrokerTransport Transport, string Host, int Port, bool UseTls, string? Path, string? Username, string? Password)
{
    public const string EmbeddedKeyword = "embedded";

    public bool IsEmbedded => Transport == BrokerTransport.Embedded;

    public static bool TryParse(string? value, [NotNullWhen(true)] out BrokerAddress? address, [NotNullWhen(false)] out string? error)
    {
        address = null;
        error = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            error = "must be 'embedded' or a URL such as mqtt://host:1883.";
            return false;
        }

        if (value.Equals(EmbeddedKeyword, StringComparison.OrdinalIgnoreCase))
        {
            address = new BrokerAddress(BrokerTransport.Embedded, "127.0.0.1", 0, false, null, null, null);
            return true;
        }

        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            error = $"'{Redact(value)}' is not 'embedded' or a URL such as mqtt://host:1883.";
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
            error = $"scheme '{uri.Scheme}' is not supported; use mqtt://, mqtts://, ws:// or wss://.";
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

    public static string Redact(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0
            ? value.Replace(uri.UserInfo, uri.UserInfo.Split(':')[0] + ":***", StringComparison.Ordinal)
            : value;
}
