using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IotGateway.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class CommandCancelledBy : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "CancelledBy",
                table: "Commands",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "CancelledBy",
                table: "Commands");
        }
    }
}
