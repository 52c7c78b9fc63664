using System.Buffers;
using System.Text;
using System.Text.Json.Nodes;
using DeviceSimulator.Commands;

namespace IotGateway.Tests.Simulator;

public class CommandAndAddressTests
{
    [Theory]
    [InlineData("mqtt://broker.example:1884", "broker.example", 1884, false)]
    [InlineData("tcp://10.0.0.5", "10.0.0.5", 1883, false)]
    [InlineData("mqtts://broker.example", "broker.example", 8883, true)]
    [InlineData("localhost:1999", "localhost", 1999, false)]
    public void BrokerUrlsOfTheArticleAndTlsAreUnderstood(string url, string host, int port, bool tls)
    {
        var address = BrokerAddress.Parse(url);

        Assert.Equal((host, port, tls), (address.Host, address.Port, address.UseTls));
    }

    [Fact]
    public void BrokerCredentialsInTheUrlAreKeptOutOfItsPrintedForm()
    {
        var address = BrokerAddress.Parse("mqtts://user:pa%40ss@broker.example:8884");

        Assert.Equal(("user", "pa@ss"), (address.Username, address.Password));
        Assert.Equal("mqtts://user:***@broker.example:8884", address.ToString());
        Assert.False(BrokerAddress.TryParse("http://broker.example", out _, out var error));
        Assert.Contains("http", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AnswerSpreadsTheRequestAfterTheDevicesOwnFieldsAsTheArticleDoes()
    {
        var payload = """{"uuid":"37e0c761","command":"PING","payload":{"x":1},"commandResult":"forged"}""";
        Assert.True(CommandRequest.TryParse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(payload)), out var request, out _));
        using (request)
        {
            var json = Encoding.UTF8.GetString(CommandResponse.ToJson("sim-iot-device-0011", JsonValue.Create("PONG"), request));

            Assert.Equal("""{"deviceId":"sim-iot-device-0011","messageType":"commandResp","commandResult":"PONG","uuid":"37e0c761","command":"PING","payload":{"x":1}}""", json);
        }
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("""{"command":"PING"}""")]
    [InlineData("""{"uuid":"","command":"PING"}""")]
    [InlineData("""{"uuid":7,"command":"PING"}""")]
    [InlineData("42")]
    public void RequestsWithoutAUuidToAnswerAreMalformed(string payload)
    {
        Assert.False(CommandRequest.TryParse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(payload)), out _, out var problem));
        Assert.False(string.IsNullOrEmpty(problem));
    }

    [Theory]
    [InlineData("""{"seconds":30}""", "OK", 30)]
    [InlineData("""{"seconds":0.5}""", "OK", 0.5)]
    [InlineData("""{"seconds":0}""", "ERROR_INVALID_ARGUMENT", 15)]
    [InlineData("""{"seconds":"30"}""", "ERROR_INVALID_ARGUMENT", 15)]
    [InlineData("""{"seconds":1e9}""", "ERROR_INVALID_ARGUMENT", 15)]
    [InlineData("""[30]""", "ERROR_INVALID_ARGUMENT", 15)]
    public void SetIntervalAcceptsOnlyAPlausibleNumberOfSeconds(string arguments, string result, double intervalAfter)
    {
        var target = new FakeTarget();
        var payload = $$"""{"uuid":"1","command":"SET_INTERVAL","payload":{{arguments}}}""";
        Assert.True(CommandRequest.TryParse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(payload)), out var request, out _));
        using (request)
        {
            var outcome = DeviceCommands.Execute(request, target);

            Assert.Equal(result, outcome.Result.GetValue<string>());
            Assert.Equal(TimeSpan.FromSeconds(intervalAfter), target.Interval);
            Assert.False(outcome.RebootAfterAnswer);
        }
    }

    private sealed class FakeTarget : ICommandTarget
    {
        public TimeSpan Interval { get; private set; } = TimeSpan.FromSeconds(15);

        public void ChangeInterval(TimeSpan interval) => Interval = interval;

        public JsonObject DescribeConfiguration() => [];
    }
}
