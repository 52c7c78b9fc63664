
namespace IotGateway.Security;

/// <summary>The API key a request was made with: who it is and what it may do.</summary>
/// <param name="Name">The key's configured name (never the key itself).</param>
/// <param name="Role">Reader (read routes) or Operator (everything).</param>
/// <param name="MayQueueCommands">True for an Operator key: it may queue and cancel commands and forget devices.</param>
public sealed record KeyView(string Name, ApiRole Role, bool MayQueueCommands);

[ApiController]
[Tags("Access")]
public sealed class MeController : ControllerBase
{
    /// <summary>Which key this is and what it may do.</summary>
    /// <remarks>A page or script that holds a key asks here what to offer: the web console shows no send form to a Reader.</remarks>
    /// <response code="200">The key's name and role.</response>
    /// <response code="401">No key, or a key the gateway does not know.</response>
    [HttpGet("api/me")]
    [ProducesResponseType<KeyView>(StatusCodes.Status200OK)]
    [ProducesResponseType<ProblemDetails>(StatusCodes.Status401Unauthorized)]
    public KeyView Get()
    {
        var role = User.IsInRole(nameof(ApiRole.Operator)) ? ApiRole.Operator : ApiRole.Reader;
        return new KeyView(User.Identity?.Name ?? "unknown", role, role == ApiRole.Operator);
    }
}
