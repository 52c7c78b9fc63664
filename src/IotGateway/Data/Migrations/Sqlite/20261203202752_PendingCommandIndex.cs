using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IotGateway.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class PendingCommandIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "IX_Commands_Pending",
                table: "Commands",
                columns: new[] { "DeviceId", "Sequence" },
                filter: "\"Status\" = 'Pending'");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_Commands_Pending",
                table: "Commands");
        }
    }
}
