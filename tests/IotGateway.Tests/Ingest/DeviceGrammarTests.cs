using System.Text;
using IotGateway.Commands;
using IotGateway.Ingest;

namespace IotGateway.Tests.Ingest;

// The grammar of what a device may send, as the README states it: device ids, message ids, command answers, and
// the JSON the gateway stores.
public sealed class DeviceGrammarTests
{
    [Theory]
    [InlineData("sensor-1")]
    [InlineData("sim-iot-device-0001")]
    [InlineData("温度計-1")]
    [InlineData("Ωmega")]
    [InlineData("a:b@c~d_e.f")]
    [InlineData("x..y")]
    [InlineData("...")]
    [InlineData("\U0001D49C")] // a letter outside the BMP: a surrogate pair
    public void DeviceIdsOfLettersDigitsAndTheAllowedPunctuationAreValid(string id) => Assert.Null(DeviceIds.Validate(id));

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("a+b")]
    [InlineData("a#b")]
    [InlineData("a%2Fb")]
    [InlineData("a%b")]
    [InlineData("a?b")]
    [InlineData("a b")]
    [InlineData("a\u00A0b")]
    [InlineData("a\tb")]
    [InlineData("a\nb")]
    [InlineData("a\u0085b")]
    [InlineData("a\u2028b")]
    [InlineData("a\u2029b")]
    [InlineData("a\u202Eb")]
    [InlineData("a\u2066b")]
    [InlineData("a\u200Eb")]
    [InlineData("a\u200Bb")]
    [InlineData("a\uFEFFb")]
    [InlineData("a\uFFFDb")]
    [InlineData("a\"b")]
    [InlineData("a'b")]
    [InlineData("a\\b")]
    [InlineData("a<b")]
    public void EverythingElseIsRefusedWithAReason(string id) => Assert.NotNull(DeviceIds.Validate(id));

    // Not as theory data: xunit's serialisation of test cases mangles lone surrogates.
    [Fact]
    public void LoneSurrogatesAreRefused()
    {
        Assert.Equal("A device id must be valid Unicode (it has a lone surrogate).", DeviceIds.Validate("a\uD800b"));
        Assert.Equal("A device id must be valid Unicode (it has a lone surrogate).", DeviceIds.Validate("a\uDC00"));
        Assert.NotNull(DeviceIds.Validate("\uDC00\uD800"));
    }

    [Fact]
    public void ADeviceIdIsAtMost128Characters()
    {
        Assert.Null(DeviceIds.Validate(new string('x', 128)));
        Assert.Equal("A device id must be at most 128 characters.", DeviceIds.Validate(new string('x', 129)));
    }

    [Theory]
    [InlineData("""{"messageId":"m-1"}""", "m-1")]
    [InlineData("""{"messageId":1}""", "1")]
    [InlineData("""{"messageId":"1"}""", "1")] // the same id as the number 1
    [InlineData("""{"messageId":1.0}""", "1.0")] // not the same as 1
    [InlineData("""{"messageId":1e400}""", "1e400")]
    [InlineData("""{"messageId":null,"uuid":"u"}""", null)] // messageId given (as none): uuid is not looked at
    [InlineData("""{"uuid":"u-1"}""", "u-1")]
    [InlineData("""{"uuid":{"a":1},"messageId":"m"}""", "m")] // the uuid is not the id here, so its type does not matter
    [InlineData("""{"messageId":"a\u00e9b"}""", "aéb")]
    [InlineData("""{"messageId":"\ud83d\ude00"}""", "\U0001F600")]
    public void TheMessageIdIsAStringOrTheTextOfANumber(string json, string? expected)
    {
        var payload = Payloads.Classify(Encoding.UTF8.GetBytes(json));
        Assert.Null(payload.MessageIdProblem);
        Assert.Equal(expected, payload.MessageKey);
    }

    [Theory]
    [InlineData("""{"messageId":"\ud800"}""", "lone surrogate")]
    [InlineData("""{"messageId":"a\u0000"}""", "lone surrogate or NUL")]
    [InlineData("""{"uuid":"\udc00x"}""", "lone surrogate")]
    [InlineData("""{"messageId":""}""", "empty")]
    [InlineData("""{"messageId":{"a":1}}""", "string or a number")]
    [InlineData("""{"messageId":[1]}""", "string or a number")]
    [InlineData("""{"messageId":true}""", "string or a number")]
    [InlineData("""{"messageId":"a","messageId":"b"}""", "more than once")]
    public void AMessageIdThatCannotBeUsedIsAProblem(string json, string problem)
    {
        var payload = Payloads.Classify(Encoding.UTF8.GetBytes(json));
        Assert.Null(payload.MessageKey);
        Assert.Contains(problem, payload.MessageIdProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void AMessageIdLongerThan200CharactersIsAProblem()
    {
        Assert.Null(Payloads.Classify(Encoding.UTF8.GetBytes($$"""{"messageId":"{{new string('m', 200)}}"}""")).MessageIdProblem);
        Assert.Contains("longer than 200", Payloads.Classify(Encoding.UTF8.GetBytes($$"""{"messageId":"{{new string('m', 201)}}"}""")).MessageIdProblem,
            StringComparison.Ordinal);
    }

    // Stored JSON must read back in System.Text.Json, SQLite and PostgreSQL's jsonb: lone surrogates and NUL become U+FFFD,
    // everything else is kept byte for byte.
    [Theory]
    [InlineData("""{"a":"\ud800"}""", """{"a":"�"}""")]
    [InlineData("""{"a":"x\udc00y","b":[1e400,"\u0000"]}""", """{"a":"x�y","b":[1e400,"�"]}""")]
    [InlineData("""{"\ud800":1}""", """{"�":1}""")]
    [InlineData("""{"a":"\ud800\ud800\udc00"}""", """{"a":"�𐀀"}""")]
    [InlineData("""{"a":"\\ud800","b":"\ud83d\ude00\u0041"}""", """{"a":"\\ud800","b":"😀A"}""")]
    public void StringsThatNoJsonStoreAcceptsAreRepaired(string json, string expected)
    {
        var payload = Payloads.Classify(Encoding.UTF8.GetBytes(json));
        Assert.Equal(Data.PayloadFormat.Json, payload.Format);
        using var document = JsonDocument.Parse(payload.Utf8);
        using var wanted = JsonDocument.Parse(expected);
        Assert.True(JsonElement.DeepEquals(wanted.RootElement, document.RootElement), Encoding.UTF8.GetString(payload.Utf8!));
        Assert.NotNull(JsonSerializer.Serialize(document.RootElement));
    }

    [Fact]
    public void JsonThatNeedsNoRepairIsStoredAsSent()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"a":"\u00e9\n","b":1e400,"c":"\ud83d\ude00"}""");
        Assert.Same(bytes, Payloads.Classify(bytes).Utf8);
    }

    [Fact]
    public void JsonDeeperThanTheReaderAcceptsIsText()
    {
        var deep = string.Concat(Enumerable.Repeat("[", JsonText.MaxDepth + 1)) + string.Concat(Enumerable.Repeat("]", JsonText.MaxDepth + 1));
        var atLimit = string.Concat(Enumerable.Repeat("[", JsonText.MaxDepth)) + string.Concat(Enumerable.Repeat("]", JsonText.MaxDepth));
        Assert.Equal(Data.PayloadFormat.Text, Payloads.Classify(Encoding.UTF8.GetBytes(deep)).Format);
        Assert.Equal(Data.PayloadFormat.Json, Payloads.Classify(Encoding.UTF8.GetBytes(atLimit)).Format);
    }

    [Fact]
    public void TextWithNulIsBinary() => Assert.Equal(Data.PayloadFormat.Binary, Payloads.Classify("a\0b"u8.ToArray()).Format);

    private static readonly Guid Id = Guid.Parse("0193a1b2-0000-7000-8000-000000000001");

    [Theory]
    [InlineData("ERROR_UNKNOWN_COMMAND", true)]
    [InlineData("ERROR", true)]
    [InlineData("Error: none", false)] // the prefix is the article's, in capitals
    [InlineData("error_lower", false)]
    [InlineData("PONG", false)]
    [InlineData(" ERROR", false)]
    public void AnErrorIsAStringResultThatStartsWithERROR(string result, bool isError)
    {
        Assert.True(CommandAnswer.TryParse(Answer($$"""{"uuid":"{{Id}}","commandResult":{{JsonSerializer.Serialize(result)}}}"""), "dev", out var answer, out _));
        Assert.Equal(isError, answer.IsError);
        Assert.Equal(result, answer.Result);
    }

    [Theory]
    [InlineData("""{"commandResult":{"temp":1}}""", """{"temp":1}""")]
    [InlineData("""{"commandResult":42}""", "42")]
    [InlineData("""{"commandResult":"\ud800"}""", "\uFFFD")]
    [InlineData("""{"commandResult":"ok","deviceId":"dev"}""", "ok")]
    public void AnswersThatAreUsed(string fields, string result)
    {
        var json = $$"""{"uuid":"{{Id}}",""" + fields[1..];
        Assert.True(CommandAnswer.TryParse(Answer(json), "dev", out var answer, out var problem), problem);
        Assert.Equal(Id, answer.CommandId);
        Assert.Equal(result, answer.Result);
        Assert.False(answer.IsError);
        using var stored = JsonDocument.Parse(answer.Response);
    }

    [Theory]
    [InlineData("""{"commandResult":"ok"}""", "no \"uuid\"")]
    [InlineData("""{"uuid":"\ud800","commandResult":"ok"}""", "no \"uuid\"")]
    [InlineData("""{"uuid":"ID"}""", "no \"commandResult\"")]
    [InlineData("""{"uuid":"ID","commandResult":null}""", "no \"commandResult\"")]
    [InlineData("""{"uuid":"ID","commandResult":"a","commandResult":"b"}""", "not usable JSON")]
    [InlineData("""{"uuid":"ID","uuid":"ID","commandResult":"a"}""", "not usable JSON")]
    [InlineData("""{"uuid":"ID","deviceId":"other","commandResult":"a"}""", "is not the topic's device")]
    [InlineData("""{"uuid":"ID","deviceId":7,"commandResult":"a"}""", "is not the topic's device")]
    [InlineData("""["uuid"]""", "not a JSON object")]
    [InlineData("PONG", "not valid JSON")]
    public void AnswersThatAreRefused(string json, string problem)
    {
        Assert.False(CommandAnswer.TryParse(Answer(json.Replace("ID", Id.ToString(), StringComparison.Ordinal)), "dev", out _, out var reason));
        Assert.Contains(problem, reason, StringComparison.Ordinal);
    }

    [Fact]
    public void AnAnswerThatIsNotUtf8IsRefused()
    {
        Assert.False(CommandAnswer.TryParse([(byte)'{', 0xFF, (byte)'}'], "dev", out _, out var reason));
        Assert.Equal("the answer is not UTF-8", reason);
    }

    private static byte[] Answer(string json) => Encoding.UTF8.GetBytes(json);
}
