
namespace IotGateway.Tests.Protocol;

public sealed class BrokerAddressTests
{
    [Theory]
    [InlineData("mqtt://gateway:s3cret@broker:notaport")]
    [InlineData("mqtt://gateway:s3/cret@broker:1883")]
    public void ABrokerSettingThatDoesNotParseIsPrintedWithoutItsPassword(string value)
    {
        Assert.False(BrokerAddress.TryParse(value, out _, out var error));

        Assert.DoesNotContain("s3", error, StringComparison.Ordinal);
        Assert.Contains("gateway:***@", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TheGatewayTakesEmbeddedButADeviceReadsAHostAloneAsPlainMqtt()
    {
        Assert.True(BrokerAddress.TryParse("embedded", out var gateway, out _));
        Assert.True(gateway.IsEmbedded);
        Assert.False(BrokerAddress.TryParse("localhost:1883", out _, out _));

        Assert.True(BrokerAddress.TryParseDeviceBroker("localhost:1883", out var device, out _));
        Assert.Equal("mqtt://localhost:1883", device.ToString());
    }
}
