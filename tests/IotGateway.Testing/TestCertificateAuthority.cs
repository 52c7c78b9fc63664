using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace IotGateway.Testing;

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
/// the CA itself, server certificates for loopback (or for other names), client certificates and
/// intermediate CAs.
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");

    private readonly X509Certificate2 _ca;
    private readonly string _directory;
    // PEM of the intermediate CAs between an issued certificate and the root (empty for a root CA).
    private readonly string _intermediatesPem;
    private int _counter;
    private int _intermediates;

    private TestCertificateAuthority(X509Certificate2 ca, string directory, string certificatePath, string intermediatesPem = "")
    {
        _ca = ca;
        _directory = directory;
        _intermediatesPem = intermediatesPem;
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
    public TestCertificateFiles CreateServerCertificate(string fileStem = "server", params string[] extraDnsNames) =>
        Issue("CN=localhost", fileStem, ServerAuthentication, LoopbackNames(extraDnsNames));

    /// <summary>
    /// A certificate for 127.0.0.1, ::1 and localhost whose extended key usage is client authentication only:
    /// the right CA and the right names, but not a certificate a server may present.
    /// </summary>
    public TestCertificateFiles CreateClientOnlyCertificateForLoopback(string fileStem = "client-only") =>
        Issue("CN=localhost", fileStem, new Oid("1.3.6.1.5.5.7.3.2"), LoopbackNames([]));

    /// <summary>
    /// A server certificate for exactly <paramref name="dnsNames"/> (the first is also the CN) and no loopback
    /// address: a certificate made for another host.
    /// </summary>
    public TestCertificateFiles CreateServerCertificateFor(string fileStem, params string[] dnsNames)
    {
        ArgumentOutOfRangeException.ThrowIfZero(dnsNames.Length);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in dnsNames)
        {
            san.AddDnsName(name);
        }

        var dn = new X500DistinguishedNameBuilder();
        dn.AddCommonName(dnsNames[0]);
        return Issue(dn.Build().Name, fileStem, ServerAuthentication, san.Build());
    }

    /// <summary>
    /// An intermediate CA signed by this one, writing into its own subdirectory. Its certificate PEM is
    /// <see cref="CertificatePath"/>; <see cref="WriteChain"/> appends it to the certificates it issues.
    /// </summary>
    public TestCertificateAuthority CreateIntermediate(string name = "IotGateway Test Intermediate CA")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        // Path length 0: it may sign end-entity certificates only.
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(
            X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_ca, true, false));
        var now = DateTimeOffset.UtcNow;
        using var issued = request.Create(_ca, now.AddDays(-1), now.AddDays(180), NewSerial());
        var intermediate = issued.CopyWithPrivateKey(key);

        var directory = Path.Combine(_directory, $"intermediate-{Interlocked.Increment(ref _intermediates)}");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "ca.crt");
        var pem = intermediate.ExportCertificatePem() + "\n";
        File.WriteAllText(path, pem);
        return new TestCertificateAuthority(intermediate, directory, path, pem + _intermediatesPem);
    }

    /// <summary>
    /// The certificate followed by the intermediate CAs up to (not including) the root, in one PEM file: what
    /// a server sends in its handshake (mosquitto's <c>certfile</c> takes such a chain).
    /// </summary>
    public string WriteChain(TestCertificateFiles certificate)
    {
        var path = Path.ChangeExtension(certificate.CertificatePath, ".chain.crt");
        File.WriteAllText(path, File.ReadAllText(certificate.CertificatePath).TrimEnd() + "\n" + _intermediatesPem);
        return path;
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

        var now = DateTimeOffset.UtcNow;
        using var certificate = request.Create(_ca, now.AddDays(-1), now.AddDays(90), NewSerial());

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

    private static X509Extension LoopbackNames(string[] extraDnsNames)
    {
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        foreach (var name in extraDnsNames)
        {
            san.AddDnsName(name);
        }

        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        return san.Build();
    }

    private static byte[] NewSerial()
    {
        var serial = new byte[16];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F; // keep it positive
        return serial;
    }

    public void Dispose()
    {
        _ca.Dispose();
        Certificate.Dispose();
    }
}
