using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace IotGateway.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class EmbeddedBrokerSessions : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "BrokerSessions",
                columns: table => new
                {
                    ClientId = table.Column<string>(type: "TEXT", nullable: false),
                    ExpirySeconds = table.Column<long>(type: "INTEGER", nullable: false),
                    DisconnectedAt = table.Column<long>(type: "INTEGER", nullable: true),
                    Username = table.Column<string>(type: "TEXT", nullable: true),
                    KeepAliveSeconds = table.Column<int>(type: "INTEGER", nullable: false),
                    Will = table.Column<string>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_BrokerSessions", x => x.ClientId);
                });

            migrationBuilder.CreateTable(
                name: "BrokerMessages",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false),
                    ClientId = table.Column<string>(type: "TEXT", nullable: false),
                    Topic = table.Column<string>(type: "TEXT", nullable: false),
                    Payload = table.Column<byte[]>(type: "BLOB", nullable: false),
                    Qos = table.Column<int>(type: "INTEGER", nullable: false),
                    Retain = table.Column<bool>(type: "INTEGER", nullable: false),
                    ExpiresAt = table.Column<long>(type: "INTEGER", nullable: true),
                    Properties = table.Column<string>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_BrokerMessages", x => x.Id);
                    table.ForeignKey(
                        name: "FK_BrokerMessages_BrokerSessions_ClientId",
                        column: x => x.ClientId,
                        principalTable: "BrokerSessions",
                        principalColumn: "ClientId",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "BrokerSubscriptions",
                columns: table => new
                {
                    ClientId = table.Column<string>(type: "TEXT", nullable: false),
                    TopicFilter = table.Column<string>(type: "TEXT", nullable: false),
                    Qos = table.Column<int>(type: "INTEGER", nullable: false),
                    NoLocal = table.Column<bool>(type: "INTEGER", nullable: false),
                    RetainAsPublished = table.Column<bool>(type: "INTEGER", nullable: false),
                    RetainHandling = table.Column<int>(type: "INTEGER", nullable: false),
                    Identifier = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_BrokerSubscriptions", x => new { x.ClientId, x.TopicFilter });
                    table.ForeignKey(
                        name: "FK_BrokerSubscriptions_BrokerSessions_ClientId",
                        column: x => x.ClientId,
                        principalTable: "BrokerSessions",
                        principalColumn: "ClientId",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_BrokerMessages_ClientId_Id",
                table: "BrokerMessages",
                columns: new[] { "ClientId", "Id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "BrokerMessages");

            migrationBuilder.DropTable(
                name: "BrokerSubscriptions");

            migrationBuilder.DropTable(
                name: "BrokerSessions");
        }
    }
}
