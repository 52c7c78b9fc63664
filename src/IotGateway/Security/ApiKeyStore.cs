using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace IotGateway.Security;

public sealed record ApiKeyIdentity(string Name, ApiRole Role);

// The API keys the gateway accepts. Keys are held only as SHA-256 hashes and compared in constant time,
// every configured key every time, so neither the comparison nor its position leaks through timing.
public sealed partial class ApiKeyStore(IOptions<ApiOptions> options, ILogger<ApiKeyStore> logger)
{
    public const string GeneratedKeyName = "generated-operator";

    private List<(byte[] Hash, ApiKeyIdentity Identity)> _keys = [];

    // True when this start generated the key (and printed it): the start-up log then says where to paste it.
    public bool GeneratedThisRun { get; private set; }

    // Called once at start-up, before the API serves requests.
    public void Load()
    {
        var configured = options.Value.Keys;
        if (configured.Count > 0)
        {
            _keys = configured.Select((k, i) => (Hash(k.Key), new ApiKeyIdentity(k.NameOr(i), k.Role))).ToList();
            LogConfigured(_keys.Count, string.Join(", ", _keys.Select(k => $"{k.Identity.Name} ({k.Identity.Role})")));
            return;
        }

        var path = Path.GetFullPath(options.Value.GeneratedKeyFile);
        string key;
        if (File.Exists(path))
        {
            key = File.ReadAllText(path).Trim();
            LogUsingGenerated(path);
        }
        else
        {
            key = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
            PrivateFiles.CreateFolder(Path.GetDirectoryName(path)!);
            using (var file = new StreamWriter(PrivateFiles.Create(path, FileMode.CreateNew), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)))
            {
                file.Write(key);
            }

            // Printed this once, so the person who started the gateway can use it; never logged again.
            LogGenerated(path, key);
            GeneratedThisRun = true;
        }

        _keys = [(Hash(key), new ApiKeyIdentity(GeneratedKeyName, ApiRole.Operator))];
    }

    public ApiKeyIdentity? Authenticate(string presented)
    {
        var hash = Hash(presented);
        ApiKeyIdentity? match = null;
        foreach (var (candidate, identity) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, candidate))
            {
                match = identity;
            }
        }

        return match;
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} API keys configured: {Keys}")]
    private partial void LogConfigured(int count, string keys);

    [LoggerMessage(Level = LogLevel.Information, Message = "No API key is configured: using the generated operator key stored in {Path}")]
    private partial void LogUsingGenerated(string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "No API key is configured, so one operator key was generated and saved (owner-only) to {Path}. " +
        "Paste it into the web console's API key field (its address follows once the gateway listens), send it in the X-API-Key header, " +
        "or click Authorize in Swagger UI and paste it. It is shown only this once: {ApiKey}. " +
        "Configure Api:Keys for real deployments (see README, Securing the gateway).")]
    private partial void LogGenerated(string path, string apiKey);
}
