
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
// method has a branch per provider: SQLite's JSON functions, PostgreSQL's jsonb operators.
public static class TelemetrySql
{
    // Count, min, max and average of a numeric field per interval of UTC ticks (ReceivedAt / interval * interval), for
    // readings in [from, to). A reading counts as skipped in its interval when its payload is not JSON (or is JSON
    // SQLite refuses, such as nesting deeper than 1000), lacks the field, or holds anything but a finite number there.
    public static Task<List<AggregateRow>> AggregateAsync(GatewayDbContext db, string deviceId, IReadOnlyList<string> field,
        long fromTicks, long toTicks, long intervalTicks, CancellationToken cancellationToken)
    {
        if (db.Database.IsSqlite())
        {
            // json_valid first: json_type and json_extract raise an error, failing the whole query, on text that is not
            // JSON (SQLite caches the parse, so the check costs little). LIMIT -1 (no limit) keeps SQLite from flattening
            // the innermost query into the aggregates, which copies the JSON expression into every use of "Raw" and
            // "Value": twelve evaluations a reading, five times slower over a million.
            var path = "$" + string.Concat(field.Select(segment => $".\"{segment}\""));
            return db.Database.SqlQuery<AggregateRow>($"""
                SELECT "Bucket", COUNT("Value") AS "Count", MIN("Value") AS "Min", MAX("Value") AS "Max", AVG("Value") AS "Avg",
                    COUNT(*) - COUNT("Value") AS "Skipped"
                FROM (
                    SELECT "Bucket", CASE WHEN "Raw" BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN "Raw" END AS "Value"
                    FROM (
                        SELECT "ReceivedAt" / {intervalTicks} * {intervalTicks} AS "Bucket",
                            CASE WHEN "Format" = 'Json' AND json_valid("Payload") THEN
                                CASE WHEN json_type("Payload", {path}) IN ('integer', 'real') THEN json_extract("Payload", {path}) END
                            END AS "Raw"
                        FROM "Telemetry"
                        WHERE "DeviceId" = {deviceId} AND "ReceivedAt" >= {fromTicks} AND "ReceivedAt" < {toTicks}
                        LIMIT -1
                    )
                )
                GROUP BY "Bucket"
                ORDER BY "Bucket"
                """).ToListAsync(cancellationToken);
        }

        if (db.Database.IsNpgsql())
        {
            // The payload is text; ingest stores as Json only what System.Text.Json read and repaired, which jsonb takes.
            // CASE, not AND: PostgreSQL may evaluate AND's sides in any order, and a string cast to numeric is an error.
            // A number beyond double's range (1e400) is valid jsonb but no double: skipped like a string. One too small for
            // a double (1e-400) counts as 0, as SQLite reads it (PostgreSQL's cast refuses it, failing the query).
            var path = field.ToArray();
            return db.Database.SqlQuery<AggregateRow>($$"""
                SELECT "Bucket", COUNT("Value") AS "Count", MIN("Value") AS "Min", MAX("Value") AS "Max", AVG("Value") AS "Avg",
                    COUNT(*) - COUNT("Value") AS "Skipped"
                FROM (
                    SELECT "ReceivedAt" / {{intervalTicks}} * {{intervalTicks}} AS "Bucket",
                        CASE WHEN jsonb_typeof(j) = 'number' THEN
                            CASE WHEN abs((j #>> '{}')::numeric) > 1.7976931348623157e308 THEN NULL
                                WHEN abs((j #>> '{}')::numeric) < 4.9406564584124654e-324 THEN 0
                                ELSE (j #>> '{}')::double precision END
                        END AS "Value"
                    FROM (
                        SELECT "ReceivedAt", CASE WHEN "Format" = 'Json' THEN "Payload"::jsonb #> {{path}} END AS j
                        FROM "Telemetry"
                        WHERE "DeviceId" = {{deviceId}} AND "ReceivedAt" >= {{fromTicks}} AND "ReceivedAt" < {{toTicks}}
                    ) AS readings
                ) AS numbers
                GROUP BY "Bucket"
                ORDER BY "Bucket"
                """).ToListAsync(cancellationToken);
        }

        throw new NotSupportedException($"Aggregates have no SQL for the database provider {db.Database.ProviderName} (Telemetry/TelemetrySql).");
    }
}
