using System.Text;
using IotGateway.Ingest;

namespace IotGateway.Tests.Ingest;

// How a device's bytes are classified before they are stored.
public sealed class PayloadsTests
{
    [Fact]
    public void JsonKeepsItsBytesAndItsMessageId()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"temp":21.5,"uuid":"u-1","messageId":"m-1","nested":{"messageId":"not this"}}""");
        var payload = Payloads.Classify(bytes);
        Assert.Equal(PayloadFormat.Json, payload.Format);
        Assert.Same(bytes, payload.Utf8);
        Assert.Equal("m-1", payload.MessageKey);
    }

    [Fact]
    public void UuidIsTheMessageIdWhenThereIsNoMessageId()
    {
        Assert.Equal("u-1", Payloads.Classify(Encoding.UTF8.GetBytes("""{"uuid":"u-1","temp":1}""")).MessageKey);
    }

    [Fact]
    public void TextThatIsNotJsonIsText()
    {
        var payload = Payloads.Classify(Encoding.UTF8.GetBytes("temperature is 21 degrees"));
        Assert.Equal(PayloadFormat.Text, payload.Format);
        Assert.Null(payload.MessageKey);
    }

    // System.Text.Json's reader does not reject these, so UTF-8 must be checked on its own: stored as JSON they
    // would come back from the API as broken text.
    [Theory]
    [InlineData(new byte[] { (byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':', (byte)'"', 0xFF, (byte)'"', (byte)'}' })]
    [InlineData(new byte[] { (byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':', (byte)'"', 0xED, 0xA0, 0x80, (byte)'"', (byte)'}' })]
    public void JsonWithInvalidUtf8InsideAStringIsBinary(byte[] bytes)
    {
        var payload = Payloads.Classify(bytes);
        Assert.Equal(PayloadFormat.Binary, payload.Format);
        Assert.Equal(bytes, Convert.FromBase64String(payload.Base64!));
    }
}
