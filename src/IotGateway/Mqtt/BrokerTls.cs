using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MQTTnet;

namespace IotGateway.Mqtt;

// Builds MQTTnet's TLS options from Mqtt:Tls. Certificate errors refuse the connection unless the
// development-only switch says otherwise.
public static class BrokerTls
{
    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1"; // extended key usage id-kp-serverAuth

    // refused: why a certificate was refused, for the log (the TLS error MQTTnet reports only says that the
    // validation callback refused it).
    public static void Configure(MqttClientTlsOptionsBuilder tls, TlsOptions options, string host, Action<string> refused)
    {
        tls.UseTls().WithTargetHost(host);
        if (!string.IsNullOrEmpty(options.ClientCertificate))
        {
            using var pem = X509Certificate2.CreateFromPemFile(options.ClientCertificate, options.ClientKey);
            // Re-imported so the private key is usable by SslStream on every platform.
            var certificate = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
            tls.WithClientCertificates([certificate]);
        }

        if (options.DangerousAcceptAnyServerCertificate)
        {
            tls.WithCertificateValidationHandler(_ => true);
            return;
        }

        if (!string.IsNullOrEmpty(options.CaFile))
        {
            var authorities = new X509Certificate2Collection();
            authorities.ImportFromPemFile(options.CaFile);
            tls.WithCertificateValidationHandler(e =>
            {
                var problem = Problem(e.Certificate, e.Chain, e.SslPolicyErrors, authorities, host);
                if (problem is not null)
                {
                    refused(problem);
                }

                return problem is null;
            });
        }
    }

    // Accepts a certificate the system trusts, or one that chains to the configured CA (through the intermediates
    // the broker sent, when the CA file holds only the root) and is meant for a server; always requires the name to
    // match the host. Returns why not, or null.
    private static string? Problem(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection authorities, string host)
    {
        if (errors == SslPolicyErrors.None)
        {
            return null;
        }

        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return "the broker sent no certificate";
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return $"the broker's certificate ({certificate.Subject}) is not for '{host}'";
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        // What SslStream requires of a server certificate: a client-only certificate from the same CA is not one.
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(ServerAuthentication));
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        using var server = new X509Certificate2(certificate);
        return chain.Build(server)
            ? null
            : $"the broker's certificate ({certificate.Subject}) is not trusted by Mqtt:Tls:CaFile: {string.Join(", ", chain.ChainStatus.Select(s => s.Status).Distinct())}";
    }
}
