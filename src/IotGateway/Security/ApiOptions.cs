using System.ComponentModel.DataAnnotations;

namespace IotGateway.Security;

public enum ApiRole
{
    // Read routes only.
    Reader,

    // Everything, including queueing and cancelling commands.
    Operator,
}

public sealed class ApiOptions
{
    public const string Section = "Api";

    // Api__Keys__0__Key, Api__Keys__0__Role, Api__Keys__0__Name. None configured: one operator key is generated.
    [ValidateEnumeratedItems]
    public List<ApiKeyOptions> Keys { get; set; } = [];

    // Where the generated first-run key is kept (owner-only); relative to the working directory.
    [Required]
    public string GeneratedKeyFile { get; set; } = "data/api-key";

    [ValidateObjectMembers]
    public RateLimitOptions RateLimit { get; set; } = new();
}

public sealed class ApiKeyOptions
{
    // Shown in logs and in each command's requestedBy; never the key itself.
    [StringLength(64)]
    public string? Name { get; set; }

    [Required]
    [MinLength(16, ErrorMessage = "Api:Keys:N:Key must be at least 16 characters.")]
    public string Key { get; set; } = "";

    public ApiRole Role { get; set; } = ApiRole.Reader;

    // The name a key goes by: its own, or its place in the list.
    public string NameOr(int index) => Name ?? $"key-{index}";
}

// Per API key, on the routes that queue or cancel commands.
public sealed class RateLimitOptions
{
    [Range(0.01, 1_000_000)]
    public double PermitsPerSecond { get; set; } = 200;

    [Range(1, 1_000_000)]
    public int Burst { get; set; } = 400;
}

[OptionsValidator]
public sealed partial class ApiOptionsValidator : IValidateOptions<ApiOptions>;

public sealed class ApiKeysUniqueValidator : IValidateOptions<ApiOptions>
{
    public ValidateOptionsResult Validate(string? name, ApiOptions options)
    {
        if (options.Keys.Select(k => k.Key).Distinct(StringComparer.Ordinal).Count() != options.Keys.Count)
        {
            return ValidateOptionsResult.Fail("Api:Keys: two entries have the same Key.");
        }

        var names = options.Keys.Select((k, i) => k.NameOr(i)).ToList();
        return names.Distinct(StringComparer.Ordinal).Count() == names.Count
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail("Api:Keys: two entries have the same Name.");
    }
}
