namespace IotGateway.Data;

public enum DatabaseProvider
{
    Sqlite,
    PostgreSQL,
}

public sealed class DatabaseOptions
{
    public const string Section = "Database";

    // Sqlite (default: one file, zero configuration) or PostgreSQL (several gateway instances on one database).
    // ConnectionStrings:Gateway is that provider's connection string. Case-insensitive.
    public DatabaseProvider Provider { get; set; } = DatabaseProvider.Sqlite;
}
