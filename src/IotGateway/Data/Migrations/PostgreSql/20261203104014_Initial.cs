using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace IotGateway.Data.Migrations.PostgreSql
{
    /// <inheritdoc />
    public partial class Initial : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "CommandLanes",
                columns: table => new
                {
                    DeviceId = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false, collation: "C"),
                    Owner = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    LeaseUntil = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_CommandLanes", x => x.DeviceId);
                });

            migrationBuilder.CreateTable(
                name: "Commands",
                columns: table => new
                {
                    Sequence = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Id = table.Column<string>(type: "character varying(36)", maxLength: 36, nullable: false),
                    DeviceId = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false, collation: "C"),
                    Name = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Payload = table.Column<string>(type: "text", nullable: true),
                    Status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    TtlSeconds = table.Column<int>(type: "integer", nullable: false),
                    CreatedAt = table.Column<long>(type: "bigint", nullable: false),
                    ExpiresAt = table.Column<long>(type: "bigint", nullable: false),
                    PublishedAt = table.Column<long>(type: "bigint", nullable: true),
                    AnsweredAt = table.Column<long>(type: "bigint", nullable: true),
                    ExpiredAt = table.Column<long>(type: "bigint", nullable: true),
                    CancelledAt = table.Column<long>(type: "bigint", nullable: true),
                    Result = table.Column<string>(type: "text", nullable: true),
                    Response = table.Column<string>(type: "text", nullable: true),
                    RequestedBy = table.Column<string>(type: "text", nullable: true),
                    CancelledBy = table.Column<string>(type: "text", nullable: true),
                    BatchId = table.Column<string>(type: "character varying(36)", maxLength: 36, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_Commands", x => x.Sequence);
                });

            migrationBuilder.CreateTable(
                name: "Devices",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false, collation: "C"),
                    SignedIn = table.Column<bool>(type: "boolean", nullable: false),
                    FirstSeen = table.Column<long>(type: "bigint", nullable: false),
                    LastSeen = table.Column<long>(type: "bigint", nullable: true),
                    SignedInAt = table.Column<long>(type: "bigint", nullable: true),
                    SignedOutAt = table.Column<long>(type: "bigint", nullable: true),
                    TelemetryCount = table.Column<long>(type: "bigint", nullable: false),
                    PendingCommands = table.Column<int>(type: "integer", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_Devices", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "Telemetry",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    DeviceId = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false, collation: "C"),
                    ReceivedAt = table.Column<long>(type: "bigint", nullable: false),
                    Topic = table.Column<string>(type: "text", nullable: false),
                    Payload = table.Column<string>(type: "text", nullable: false),
                    Format = table.Column<string>(type: "character varying(8)", maxLength: 8, nullable: false),
                    MessageKey = table.Column<string>(type: "text", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_Telemetry", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_Commands_BatchId",
                table: "Commands",
                column: "BatchId",
                filter: "\"BatchId\" IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "IX_Commands_DeviceId_Sequence",
                table: "Commands",
                columns: new[] { "DeviceId", "Sequence" });

            migrationBuilder.CreateIndex(
                name: "IX_Commands_Id",
                table: "Commands",
                column: "Id",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_Commands_Status_Sequence",
                table: "Commands",
                columns: new[] { "Status", "Sequence" });

            migrationBuilder.CreateIndex(
                name: "IX_Devices_SignedIn",
                table: "Devices",
                column: "SignedIn");

            migrationBuilder.CreateIndex(
                name: "IX_Telemetry_DeviceId_Id",
                table: "Telemetry",
                columns: new[] { "DeviceId", "Id" });

            migrationBuilder.CreateIndex(
                name: "IX_Telemetry_DeviceId_MessageKey",
                table: "Telemetry",
                columns: new[] { "DeviceId", "MessageKey" },
                unique: true,
                filter: "\"MessageKey\" IS NOT NULL");

            // Devices.PendingCommands follows the Commands table inside the same transaction as every change, as the
            // SQLite triggers do. Statement-level, over transition tables: a bulk request or an expiry sweep that
            // changes 10,000 commands runs one UPDATE per statement, not one per row.
            migrationBuilder.Sql("""
                CREATE FUNCTION "Commands_PendingCount_Insert"() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE "Devices" AS d SET "PendingCommands" = d."PendingCommands" + n.count
                    FROM (SELECT "DeviceId", count(*)::int AS count FROM new_rows
                          WHERE "Status" IN ('Pending', 'Published') GROUP BY "DeviceId") AS n
                    WHERE d."Id" = n."DeviceId";
                    RETURN NULL;
                END $$;
                CREATE TRIGGER "Commands_PendingCount_Insert" AFTER INSERT ON "Commands"
                    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "Commands_PendingCount_Insert"();

                CREATE FUNCTION "Commands_PendingCount_Update"() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    UPDATE "Devices" AS d SET "PendingCommands" = d."PendingCommands" - n.count
                    FROM (SELECT o."DeviceId", count(*)::int AS count FROM old_rows AS o JOIN new_rows AS w ON w."Sequence" = o."Sequence"
                          WHERE o."Status" IN ('Pending', 'Published') AND w."Status" NOT IN ('Pending', 'Published')
                          GROUP BY o."DeviceId") AS n
                    WHERE d."Id" = n."DeviceId";
                    RETURN NULL;
                END $$;
                CREATE TRIGGER "Commands_PendingCount_Update" AFTER UPDATE ON "Commands"
                    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "Commands_PendingCount_Update"();
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER "Commands_PendingCount_Update" ON "Commands";
                DROP TRIGGER "Commands_PendingCount_Insert" ON "Commands";
                DROP FUNCTION "Commands_PendingCount_Update"();
                DROP FUNCTION "Commands_PendingCount_Insert"();
                """);
            migrationBuilder.DropTable(
                name: "CommandLanes");

            migrationBuilder.DropTable(
                name: "Commands");

            migrationBuilder.DropTable(
                name: "Devices");

            migrationBuilder.DropTable(
                name: "Telemetry");
        }
    }
}
