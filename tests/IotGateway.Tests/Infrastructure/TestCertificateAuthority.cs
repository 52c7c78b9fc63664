using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace IotGateway.Tests.Infrastructure;

/// <summary>PEM files of a certificate and its private key (PKCS#8, unencrypted).</summary>
public sealed record TestCertificateFiles(string CertificatePath, string KeyPath)
{
    /// <summary>Loads the certificate with its private key, usable as an SslStream client certificate.</summary>
    public X509Certificate2 Load()
    {
        using var ephemeral = X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
        // A round trip through PKCS#12 gives a key SslStream can use on every platform (Windows
        // refuses ephemeral keys); on Linux it is harmless.
        return X509CertificateLoader.LoadPkcs12(ephemeral.Export(X509ContentType.Pkcs12), null);
    }
}

/// <summary>
/// A throw-away certificate authority (ECDSA P-256) that writes PEM files into a directory:
/// the CA itself, server certificates for loopback and client certificates.
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private readonly X509Certificate2 _ca;
    private readonly string _directory;
    private int _counter;

    private TestCertificateAuthority(X509Certificate2 ca, string directory, string certificatePath)
    {
        _ca = ca;
        _directory = directory;
        CertificatePath = certificatePath;
        Certificate = X509CertificateLoader.LoadCertificate(ca.RawData);
    }

    /// <summary>The CA certificate's PEM file (what mosquitto's <c>cafile</c> and a client's trust store need).</summary>
    public string CertificatePath { get; }

    /// <summary>The CA certificate without its private key (for <c>WithTrustChain</c>).</summary>
    public X509Certificate2 Certificate { get; }

    public static TestCertificateAuthority Create(string directory, string name = "IotGateway Test CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        var ca = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(1));

        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "ca.crt");
        File.WriteAllText(path, ca.ExportCertificatePem());
        return new TestCertificateAuthority(ca, directory, path);
    }

    /// <summary>A server certificate valid for 127.0.0.1, ::1 and localhost (plus <paramref name="extraDnsNames"/>).</summary>
    public TestCertificateFiles CreateServerCertificate(string fileStem = "server", params string[] extraDnsNames)
    {
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        foreach (var name in extraDnsNames)
        {
            san.AddDnsName(name);
        }

        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        return Issue("CN=localhost", fileStem, new Oid("1.3.6.1.5.5.7.3.1"), san.Build());
    }

    /// <summary>A client certificate with the given common name.</summary>
    public TestCertificateFiles CreateClientCertificate(string commonName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(commonName);
        var stem = "client-" + new string(commonName.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray());
        var dn = new X500DistinguishedNameBuilder();
        dn.AddCommonName(commonName);
        return Issue(dn.Build().Name, stem, new Oid("1.3.6.1.5.5.7.3.2"), san: null);
    }

    private TestCertificateFiles Issue(string subject, string fileStem, Oid usage, X509Extension? san)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca, true, false));
        if (san is not null)
        {
            request.CertificateExtensions.Add(san);
        }

        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F; // keep it positive
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.Create(_ca, now.AddDays(-1), now.AddDays(90), serial);

        var n = Interlocked.Increment(ref _counter);
        var certificatePath = Path.Combine(_directory, $"{fileStem}-{n}.crt");
        var keyPath = Path.Combine(_directory, $"{fileStem}-{n}.key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keyPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return new TestCertificateFiles(certificatePath, keyPath);
    }

    public void Dispose()
    {
        _ca.Dispose();
        Certificate.Dispose();
    }
}
