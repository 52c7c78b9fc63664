using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IotGateway.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class DeviceTransport : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "TcpInstance",
                table: "Devices",
                type: "TEXT",
                maxLength: 128,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Transport",
                table: "Devices",
                type: "TEXT",
                maxLength: 8,
                nullable: false,
                defaultValue: "mqtt");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TcpInstance",
                table: "Devices");

            migrationBuilder.DropColumn(
                name: "Transport",
                table: "Devices");
        }
    }
}
