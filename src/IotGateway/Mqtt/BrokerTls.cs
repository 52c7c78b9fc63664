using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MQTTnet;

namespace IotGateway.Mqtt;

// Builds MQTTnet's TLS options from Mqtt:Tls. Certificate errors refuse the connection unless the
// development-only switch says otherwise.
public static class BrokerTls
{
    public static void Configure(MqttClientTlsOptionsBuilder tls, TlsOptions options, string host)
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
            tls.WithCertificateValidationHandler(e => IsTrusted(e.Certificate, e.Chain, e.SslPolicyErrors, authorities));
        }
    }

    // Accepts a certificate the system trusts, or one that chains to the configured CA (through the intermediates
    // the broker sent, when the CA file holds only the root), and always requires the name to match the host.
    private static bool IsTrusted(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection authorities)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        using var server = new X509Certificate2(certificate);
        return chain.Build(server);
    }
}
