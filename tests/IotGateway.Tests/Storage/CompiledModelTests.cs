using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;

namespace IotGateway.Tests.Storage;

// The gateway starts on EF Core compiled models (Data/CompiledModels) and skips EF's own check for model changes
// without a migration at start: both cost start-up time. These tests stand in for them. The commands that fix a
// failure are in CONTRIBUTING.md ("A migration").
public sealed class CompiledModelTests
{
    public static TheoryData<string> Providers => ["Sqlite", "PostgreSQL"];

    [Theory]
    [MemberData(nameof(Providers))]
    public void TheCompiledModelIsTheModelTheCodeDescribes(string provider)
    {
        using var db = Context(provider);
        var described = Schema(db.GetService<IDesignTimeModel>().Model.GetRelationalModel());
        var compiled = Schema(db.Model.GetRelationalModel());
        Assert.True(described.SetEquals(compiled),
            $"Data/CompiledModels is out of date for {provider}: run dotnet ef dbcontext optimize as CONTRIBUTING.md says. " +
            $"Only in the code: {string.Join("; ", described.Except(compiled))}. Only in the compiled model: {string.Join("; ", compiled.Except(described))}.");
    }

    [Theory]
    [MemberData(nameof(Providers))]
    public void EveryModelChangeHasItsMigration(string provider)
    {
        using var db = Context(provider);
        Assert.False(db.Database.HasPendingModelChanges(),
            $"The model has changes no {provider} migration makes: add one as CONTRIBUTING.md says.");
    }

    // Data/AppliedMigrations decides at start, without EF Core, whether the migrator must run.
    [Theory]
    [MemberData(nameof(Providers))]
    public void TheStartLooksForTheMigrationsEfCoreApplies(string provider)
    {
        using var db = Context(provider);
        Assert.Equal(db.Database.GetMigrations().Order(), AppliedMigrations.Known(db.GetType()).Order());
    }

    // What the database sees of a model: tables, columns, keys and indexes.
    private static HashSet<string> Schema(IRelationalModel model) =>
    [
        .. model.Tables.SelectMany(table => new[] { $"table {table.Name}" }
            .Concat(table.Columns.Select(c => $"{table.Name}.{c.Name} {c.StoreType} null={c.IsNullable} default={c.DefaultValueSql ?? c.DefaultValue}"))
            .Concat(table.UniqueConstraints.Select(k => $"{table.Name} key {k.Name} ({string.Join(",", k.Columns.Select(c => c.Name))})"))
            .Concat(table.ForeignKeyConstraints.Select(k => $"{table.Name} fk {k.Name} → {k.PrincipalTable.Name} {k.OnDeleteAction}"))
            .Concat(table.Indexes.Select(i => $"{table.Name} index {i.Name} ({string.Join(",", i.Columns.Select(c => c.Name))}) unique={i.IsUnique} filter={i.Filter}"))),
    ];

    // Contexts that never connect: the model and the migrations are all these tests read.
    private static GatewayDbContext Context(string provider) => provider == "Sqlite"
        ? new SqliteGatewayDbContext(new DbContextOptionsBuilder<SqliteGatewayDbContext>().UseSqlite("Data Source=:memory:").Options)
        : new PostgresGatewayDbContext(new DbContextOptionsBuilder<PostgresGatewayDbContext>().UseNpgsql("Host=localhost").Options);
}
