using System.ComponentModel.DataAnnotations;
using System.Net;

namespace IotGateway.Tcp;

// The listener for the article's TCP devices. Off unless a port is given (Tcp:Port, or the article's SERVER_PORT).
public sealed class TcpOptions
{
    public const string Section = "Tcp";

    [Range(1, 65535)]
    public int? Port { get; set; }

    // Loopback unless told otherwise: the article's TCP protocol has no credentials, so anyone who can reach the
    // port can speak for any device. Binding another address logs a warning at start.
    [Required]
    public string BindAddress { get; set; } = "127.0.0.1";

    // Connections open at once; further ones are closed at accept.
    [Range(1, 1_000_000)]
    public int MaxConnections { get; set; } = 10_000;

    // A connection that names no device within this time is closed.
    [Range(0.1, 3600)]
    public double FirstMessageTimeoutSeconds { get; set; } = 10;

    // The first object of a connection, which names its device, may be at most this large: until then nobody knows who
    // is talking, so a connection holds little memory (the rest of a device's objects may be Ingest:MaxPayloadBytes).
    [Range(256, 1_048_576)]
    public int MaxFirstMessageBytes { get; set; } = 4096;

    // A device that sends nothing for this long is taken as gone: its connection is closed and it is signed out.
    [Range(0.1, 86400)]
    public double IdleTimeoutSeconds { get; set; } = 60;

    // How long a written command may wait for its answer before the next command for the device is written.
    [Range(0.1, 3600)]
    public double AnswerTimeoutSeconds { get; set; } = 10;

    public TcpTlsOptions Tls { get; set; } = new();
}

// TLS on the TCP port: a PEM certificate and key, or a PKCS#12 file with its password.
public sealed class TcpTlsOptions
{
    public string? CertificateFile { get; set; }

    public string? KeyFile { get; set; }

    public string? Password { get; set; }

    public bool Enabled => !string.IsNullOrEmpty(CertificateFile);
}

public sealed class TcpOptionsValidator : IValidateOptions<TcpOptions>
{
    public ValidateOptionsResult Validate(string? name, TcpOptions options)
    {
        var failures = new List<string>();
        if (!IPAddress.TryParse(options.BindAddress, out _))
        {
            failures.Add($"Tcp:BindAddress: '{options.BindAddress}' is not an IP address (0.0.0.0 for every interface).");
        }

        if (options.Tls.Enabled && !File.Exists(options.Tls.CertificateFile))
        {
            failures.Add($"Tcp:Tls:CertificateFile: the file '{options.Tls.CertificateFile}' does not exist.");
        }

        if (!string.IsNullOrEmpty(options.Tls.KeyFile) && !File.Exists(options.Tls.KeyFile))
        {
            failures.Add($"Tcp:Tls:KeyFile: the file '{options.Tls.KeyFile}' does not exist.");
        }

        if (!string.IsNullOrEmpty(options.Tls.KeyFile) && !options.Tls.Enabled)
        {
            failures.Add("Tcp:Tls:KeyFile needs Tcp:Tls:CertificateFile.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

[OptionsValidator]
public sealed partial class TcpOptionsAttributeValidator : IValidateOptions<TcpOptions>;
