using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IotGateway.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class PendingCommandTriggers : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Devices.PendingCommands follows the Commands table inside the same transaction as every change,
            // so the count dashboards poll never drifts and is never computed per request.
            migrationBuilder.Sql("""
                CREATE TRIGGER "Commands_PendingCount_Insert" AFTER INSERT ON "Commands"
                WHEN NEW."Status" IN ('Pending', 'Published')
                BEGIN
                    UPDATE "Devices" SET "PendingCommands" = "PendingCommands" + 1 WHERE "Id" = NEW."DeviceId";
                END;
                """);
            migrationBuilder.Sql("""
                CREATE TRIGGER "Commands_PendingCount_Update" AFTER UPDATE OF "Status" ON "Commands"
                WHEN OLD."Status" IN ('Pending', 'Published') AND NEW."Status" NOT IN ('Pending', 'Published')
                BEGIN
                    UPDATE "Devices" SET "PendingCommands" = "PendingCommands" - 1 WHERE "Id" = NEW."DeviceId";
                END;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP TRIGGER \"Commands_PendingCount_Update\";");
            migrationBuilder.Sql("DROP TRIGGER \"Commands_PendingCount_Insert\";");
        }
    }
}
