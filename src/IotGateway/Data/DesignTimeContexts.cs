using Microsoft.EntityFrameworkCore.Design;

namespace IotGateway.Data;

// For `dotnet ef migrations add … --context SqliteGatewayDbContext|PostgresGatewayDbContext`: the model per provider,
// without starting the gateway. Nothing connects at design time.
public sealed class SqliteDesignTimeContext : IDesignTimeDbContextFactory<SqliteGatewayDbContext>
{
    public SqliteGatewayDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SqliteGatewayDbContext>().UseSqlite("Data Source=design-time.db").Options);
}

public sealed class PostgresDesignTimeContext : IDesignTimeDbContextFactory<PostgresGatewayDbContext>
{
    public PostgresGatewayDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<PostgresGatewayDbContext>().UseNpgsql("Host=localhost;Database=design-time").Options);
}
