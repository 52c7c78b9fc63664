using System.Runtime.CompilerServices;
using IotGateway.Data;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;

namespace IotGateway.Telemetry;

// One interval's figures as the database computes them: Bucket is the interval's start in UTC ticks.
public sealed class AggregateRow
{
    public long Bucket { get; init; }
    public long Count { get; init; }
    public double? Min { get; init; }
    public double? Max { get; init; }
    public double? Avg { get; init; }
    public long Skipped { get; init; }
}

// The reads whose SQL differs between database providers, in this one class; every other read is EF LINQ. Each
// method has a SQLite branch; a PostgreSQL provider adds its own beside it (the aggregate: "Payload"::jsonb #> path,
// jsonb_typeof(…) = 'number', cast to double precision, with text that is not JSON skipped rather than cast).
public static class TelemetrySql
{
    // Count, min, max and average of a numeric field per interval of UTC ticks (ReceivedAt / interval * interval), for
    // readings in [from, to). A reading counts as skipped in its interval when its payload is not JSON (or is JSON
    // SQLite refuses, such as nesting deeper than 1000), lacks the field, or holds anything but a finite number there.
    public static async Task<List<AggregateRow>> AggregateAsync(GatewayDbContext db, string deviceId, IReadOnlyList<string> field,
        long fromTicks, long toTicks, long intervalTicks, CancellationToken cancellationToken)
    {
        if (db.Database.IsSqlite())
        {
            // JSON that ingest stored is JSON SQLite reads (System.Text.Json accepted it, at most 64 deep), so the query
            // first runs without checking each payload: json_valid parses every payload once more, which tripled the
            // time over a million readings. Rows that are not (written by other means) make SQLite raise an error for
            // the whole query; then it runs again with the check, slower, never failing.
            var path = "$" + string.Concat(field.Select(segment => $".\"{segment}\""));
            try
            {
                return await SqliteAggregate(db, deviceId, path, fromTicks, toTicks, intervalTicks, checkEachPayload: false).ToListAsync(cancellationToken);
            }
            catch (SqliteException e) when (e.SqliteErrorCode == SQLitePCL.raw.SQLITE_ERROR && e.Message.Contains("JSON", StringComparison.Ordinal))
            {
                return await SqliteAggregate(db, deviceId, path, fromTicks, toTicks, intervalTicks, checkEachPayload: true).ToListAsync(cancellationToken);
            }
        }

        throw new NotSupportedException($"Aggregates have no SQL for the database provider {db.Database.ProviderName} yet (Telemetry/TelemetrySql).");
    }

    private static IQueryable<AggregateRow> SqliteAggregate(GatewayDbContext db, string deviceId, string path, long fromTicks, long toTicks,
        long intervalTicks, bool checkEachPayload)
    {
        var json = checkEachPayload ? """ "Format" = 'Json' AND json_valid("Payload") """ : """ "Format" = 'Json' """;
        return db.Database.SqlQuery<AggregateRow>(FormattableStringFactory.Create($$"""
            SELECT "Bucket", COUNT("Value") AS "Count", MIN("Value") AS "Min", MAX("Value") AS "Max", AVG("Value") AS "Avg",
                COUNT(*) - COUNT("Value") AS "Skipped"
            FROM (
                SELECT "Bucket", CASE WHEN "Raw" BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN "Raw" END AS "Value"
                FROM (
                    SELECT "ReceivedAt" / {0} * {0} AS "Bucket",
                        CASE WHEN {{json}} THEN
                            CASE WHEN json_type("Payload", {1}) IN ('integer', 'real') THEN json_extract("Payload", {1}) END
                        END AS "Raw"
                    FROM "Telemetry"
                    WHERE "DeviceId" = {2} AND "ReceivedAt" >= {3} AND "ReceivedAt" < {4}
                )
            )
            GROUP BY "Bucket"
            ORDER BY "Bucket"
            """, intervalTicks, path, deviceId, fromTicks, toTicks));
    }
}
