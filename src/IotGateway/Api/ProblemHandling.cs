using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Data.Sqlite;
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
// an I/O error) is the service being unavailable, not a bug: 503 with Retry-After and SQLite's reason. The
// request's transaction was rolled back, so nothing of it was stored. Logged once per request, as a warning.
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
        var sqlite = Find(exception);
        if (sqlite is null || !Unavailable.Contains(sqlite.SqliteErrorCode))
        {
            return false;
        }

        LogUnavailable(httpContext.Request.Method, httpContext.Request.Path, sqlite.Message);
        await WriteAsync(httpContext, $"The database cannot be used now ({sqlite.Message}); nothing of this request was stored. Retry later.");
        return true;
    }

    // The one 503 of the API, also while the database is still being opened (UseDatabaseReadiness).
    public static Task WriteAsync(HttpContext context, string detail)
    {
        context.Response.Headers.RetryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Database not available", detail: detail)
            .ExecuteAsync(context);
    }

    private static SqliteException? Find(Exception? exception)
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is SqliteException sqlite)
            {
                return sqlite;
            }
        }

        return null;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Method} {Path} answered 503, the database is not available: {Reason}")]
    private partial void LogUnavailable(string method, string path, string reason);
}
