using IotGateway.Observability;

namespace IotGateway.Tests.Ingest;

// Device and operator text in log lines: nothing in it can end a line or reorder what a person reads.
public sealed class LogTextTests
{
    [Theory]
    [InlineData("a\nb", "a\\u000Ab")]
    [InlineData("a\rb", "a\\u000Db")]
    [InlineData("a\u0085b", "a\\u0085b")]
    [InlineData("a\u2028b", "a\\u2028b")]
    [InlineData("a\u2029b", "a\\u2029b")]
    [InlineData("\u202Aa\u202Bb\u202Cc\u202Dd\u202Ee", "\\u202Aa\\u202Bb\\u202Cc\\u202Dd\\u202Ee")]
    [InlineData("\u2066a\u2067b\u2068c\u2069", "\\u2066a\\u2067b\\u2068c\\u2069")]
    [InlineData("a\u200Eb\u200Fc\u061C", "a\\u200Eb\\u200Fc\\u061C")]
    [InlineData("a\u200Bb\uFEFF", "a\\u200Bb\\uFEFF")]
    [InlineData("温度計 é 😀", "温度計 é 😀")]
    public void CharactersThatCouldForgeOrReorderALineAreEscaped(string text, string expected) => Assert.Equal(expected, LogText.Printable(text));

    [Fact]
    public void LoneSurrogatesAreEscaped() => Assert.Equal("a\\uD800b\\uDC00", LogText.Printable("a\uD800b\uDC00"));

    [Fact]
    public void ACutNeverSplitsASurrogatePair()
    {
        var text = "ab😀cd"; // the emoji is two UTF-16 units at 2 and 3
        Assert.Equal("ab…", LogText.Printable(text, 3));
        Assert.Equal("ab😀…", LogText.Printable(text, 4));
        Assert.Equal("ab😀cd", LogText.Printable(text, 6));
    }

    [Fact]
    public void PlainTextIsReturnedAsItIs()
    {
        const string text = "sensor-1 said PONG";
        Assert.Same(text, LogText.Printable(text));
    }
}
