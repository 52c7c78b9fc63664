using Microsoft.AspNetCore.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using SQLitePCL;

namespace IotGateway.Api;

// Turns Kestrel's request errors (body too large, malformed request) into problem details with their own
// status instead of a 500; everything else falls through to the default handler.
public sealed class BadRequestExceptionHandler(IProblemDetailsService problems) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not BadHttpRequestException bad)
        {
            return false;
        }

        httpContext.Response.StatusCode = bad.StatusCode;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails = new ProblemDetails
            {
                Status = bad.StatusCode,
                Title = bad.StatusCode == StatusCodes.Status413PayloadTooLarge ? "Request body too large" : "Bad request",
                Detail = bad.Message,
            },
            Exception = exception,
        });
    }
}

// The database failing under a request (another process holding the write lock past the busy timeout, a full disk,
// an I/O error; PostgreSQL unreachable or restarting) is the service being unavailable, not a bug: 503 with
// Retry-After and the database's reason. The request's transaction was rolled back, so nothing of it was stored.
// Logged once per request, as a warning.
public sealed partial class DatabaseUnavailableExceptionHandler(ILogger<DatabaseUnavailableExceptionHandler> logger)
    : IExceptionHandler
{
    public const int RetryAfterSeconds = 5;

    // Errors of the database, not of the request.
    private static readonly HashSet<int> Unavailable =
    [
        raw.SQLITE_BUSY, raw.SQLITE_LOCKED, raw.SQLITE_READONLY, raw.SQLITE_IOERR,
        raw.SQLITE_CORRUPT, raw.SQLITE_FULL, raw.SQLITE_CANTOPEN, raw.SQLITE_PROTOCOL,
    ];

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var reason = Find<SqliteException>(exception) is { } sqlite && Unavailable.Contains(sqlite.SqliteErrorCode) ? sqlite.Message
            : Find<NpgsqlException>(exception) is { } postgres && DatabaseErrors.IsTransient(postgres) ? postgres.Message
            : null;
        if (reason is null)
        {
            return false;
        }

        LogUnavailable(httpContext.Request.Method, httpContext.Request.Path, reason);
        await WriteAsync(httpContext, $"The database cannot be used now ({reason}); nothing of this request was stored. Retry later.");
        return true;
    }

    // The one 503 of the API, also while the database is still being opened (UseDatabaseReadiness).
    public static Task WriteAsync(HttpContext context, string detail)
    {
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Database not available", detail: detail)
            .ExecuteAsync(context);
    }

    private static T? Find<T>(Exception? exception) where T : Exception
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is T found)
            {
                return found;
            }
        }

        return null;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Method} {Path} answered 503, the database is not available: {Reason}")]
    private partial void LogUnavailable(string method, string path, string reason);
}
