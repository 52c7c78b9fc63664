using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using IotGateway.Security;

namespace IotGateway.Events;

// Short-lived tokens that open GET /api/events from a browser: EventSource cannot send the X-API-Key header, and an
// API key in a URL would end up in proxy and access logs. A page holding a key asks POST /api/events/tokens and
// passes the token as ?access_token=…; what a log keeps of it is useless a minute later, and it opens nothing else.
// Held only as hashes, in memory: tokens do not survive a restart (the page asks again).
public sealed class EventTokens(IOptions<EventOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, (ApiKeyIdentity Identity, DateTimeOffset ExpiresAt)> _tokens = new(StringComparer.Ordinal);
    private readonly TimeSpan _lifetime = TimeSpan.FromSeconds(options.Value.TokenLifetimeSeconds);

    public (string Token, DateTimeOffset ExpiresAt) Issue(ApiKeyIdentity identity)
    {
        var now = time.GetUtcNow();
        foreach (var (hash, entry) in _tokens)
        {
            if (entry.ExpiresAt <= now)
            {
                _tokens.TryRemove(hash, out _);
            }
        }

        var token = Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
        var expiresAt = now + _lifetime;
        _tokens[Hash(token)] = (identity, expiresAt);
        return (token, expiresAt);
    }

    // The identity the token was issued to, while it has not expired.
    public ApiKeyIdentity? Validate(string token)
    {
        if (token.Length > 100 || !_tokens.TryGetValue(Hash(token), out var entry))
        {
            return null;
        }

        return entry.ExpiresAt > time.GetUtcNow() ? entry.Identity : null;
    }

    private static string Hash(string token) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
