using Npgsql;

namespace IotGateway.Tests.Gateway;

public sealed class SqliteDeviceSearchTests : DeviceSearchTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.Sqlite;
}

// The test cluster's databases are in the C locale, where PostgreSQL's lower() folds A–Z only, as SQLite's does.
public sealed class PostgresDeviceSearchTests : DeviceSearchTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;
}

// A database in a Unicode locale, as the postgres image makes by default (en_US.utf8), where lower() folds every
// script: the search still folds A–Z only, because the Id column is in the C collation (GatewayDbContext), under
// which lower() folds ASCII only.
public sealed class PostgresUnicodeLocaleDeviceSearchTests : DeviceSearchTests
{
    protected override DatabaseProvider Provider => DatabaseProvider.PostgreSQL;

    protected override async Task<string?> DatabaseAsync()
    {
        var cluster = await TestPostgres.ClusterAsync();
        var name = $"test_{Guid.NewGuid():N}";
        await using var connection = new NpgsqlConnection(cluster.ConnectionString("postgres") + ";Pooling=false");
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand(
            $"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8'", connection);
        await create.ExecuteNonQueryAsync();
        return cluster.ConnectionString(name);
    }
}

// GET /api/devices?search= finds the ids containing the text, folding A–Z only, on every provider and in every
// database locale (the console's fleet page filters new devices by the same rule).
public abstract class DeviceSearchTests
{
    private static readonly string[] Ids = ["CAFÉ-1", "café-2", "ΟΔΟΣ-3", "Sensor-4"];

    protected abstract DatabaseProvider Provider { get; }

    protected virtual Task<string?> DatabaseAsync() => Task.FromResult<string?>(null);

    [SkippableFact]
    public async Task SearchFoldsAsciiLettersOnlyWhateverTheDatabase()
    {
        var database = await DatabaseAsync();
        var (gateway, port) = await GatewayApp.StartEmbeddedAsync(s =>
        {
            if (database is not null)
            {
                s["ConnectionStrings:Gateway"] = database;
            }
        }, Provider);
        await using var _ = gateway;
        foreach (var id in Ids)
        {
            await using var device = await TestMqttClient.ConnectArticleDeviceAsync("127.0.0.1", port, id);
            await device.PublishAsync(TopicRoots.Default.For(id).Data, """{"temp":1}""", MqttQualityOfServiceLevel.AtLeastOnce);
            await gateway.WaitForDeviceAsync(id, d => d.TelemetryCount == 1, $"{id} is known");
        }

        async Task<string> Found(string search)
        {
            var page = await gateway.Http.GetFromJsonAsync<Page<DeviceView>>($"/api/devices?search={Uri.EscapeDataString(search)}", GatewayApp.Json);
            return string.Join(" ", page!.Items.Select(d => d.Id));
        }

        Assert.Equal("CAFÉ-1 café-2", await Found("caf"));
        Assert.Equal("Sensor-4", await Found("SENSOR"));
        Assert.Equal("CAFÉ-1", await Found("É"));
        Assert.Equal("café-2", await Found("é"));
        Assert.Equal("ΟΔΟΣ-3", await Found("Σ"));
        Assert.Equal("", await Found("σ"));
    }
}
