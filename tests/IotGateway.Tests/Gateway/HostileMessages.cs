using System.Globalization;
using System.Text;

namespace IotGateway.Tests.Gateway;

public sealed record HostileMessage(string Topic, byte[] Payload, byte[]? UserMessageId, string? GoodKey, string What)
{
    public override string ToString() => $"{What} on '{Topic}'";
}

// A seeded generator of what a hostile or broken device sends, for every topic the gateway reads: bytes that are not
// UTF-8, lone surrogate and NUL escapes in every field the gateway reads, nesting far past the reader's depth, numbers
// no double holds, wrong types, duplicate keys, odd device ids in the topic. Good readings are mixed in, each with a
// unique messageId (GoodKey) that must end up stored.
public sealed class HostileMessages(int seed, IReadOnlyList<string> goodDevices, IReadOnlyList<Guid> commands, bool brokerPassesControlCharacters)
{
    private readonly Random _random = new(seed);
    private int _good;

    // Device ids a topic may carry. Mosquitto drops a client whose topic holds a control character, so those are only
    // sent through the embedded broker.
    private static readonly string[] HostileIds =
    [
        ".", "..", "a%2Fb", "a%b", "a?b", "a b", "a\u2028b", "a\u2029b", "a\u202Eb", "a\u2066b", "a\u200Fb", "a\u200Bb",
        "\uFFFD", "e\u0301", "a\uD800b", new string('x', 129), "a\u00A0b", "a'b", "a\"b", "a<b>", "a\\b",
    ];

    private static readonly string[] ControlIds = ["a\u0085b", "a\nb", "a\rb", "a\u0007b", "a\u001Bb", "a\u007Fb", "a\u009Bb"];

    private static readonly string[] LoneEscapes = [@"\ud800", @"\udfff", @"\udbff\u0041", @"x\udc00y", @"\u0000", @"a\u0000b", @"\ud800\ud800"];

    public IEnumerable<HostileMessage> Generate(int count)
    {
        for (var i = 0; i < count; i++)
        {
            yield return _random.Next(4) == 0 ? GoodReading() : Hostile();
        }
    }

    public HostileMessage GoodReading()
    {
        var device = Pick(goodDevices);
        var key = $"good-{_good++}";
        var payload = $$"""{"deviceId":"{{device}}","messageType":"DATA","temp":{{_random.Next(-40, 60)}}.5,"messageId":"{{key}}"}""";
        return new HostileMessage(TopicRoots.Default.For(device).Data, Encoding.UTF8.GetBytes(payload), null, key, "good reading");
    }

    private HostileMessage Hostile()
    {
        var kind = _random.Next(3);
        var topics = TopicRoots.Default.For(DeviceId());
        var topic = kind switch { 0 => topics.Data, 1 => topics.CommandResponse, _ => topics.Register };
        var (payload, what) = kind switch
        {
            0 => Reading(),
            1 => Answer(),
            _ => Presence(),
        };
        byte[]? userId = null;
        if (kind == 0 && _random.Next(6) == 0)
        {
            (userId, var idWhat) = UserMessageId();
            what += $", user property {idWhat}";
        }

        return new HostileMessage(topic, payload, userId, null, what);
    }

    private string DeviceId()
    {
        var roll = _random.Next(10);
        if (roll < 6)
        {
            return Pick(goodDevices);
        }

        return brokerPassesControlCharacters && roll == 9 ? Pick(ControlIds) : Pick(HostileIds);
    }

    private (byte[] Payload, string What) Reading() => _random.Next(12) switch
    {
        0 => (InvalidUtf8(), "invalid UTF-8"),
        1 => (Json($$"""{"temp":1,"messageId":"{{Pick(LoneEscapes)}}"}"""), "lone escape in messageId"),
        2 => (Json($$"""{"temp":1,"uuid":"{{Pick(LoneEscapes)}}","note":"{{Pick(LoneEscapes)}}"}"""), "lone escape in uuid and a value"),
        3 => (Json($$$"""{"{{{Pick(LoneEscapes)}}}":"{{{Pick(LoneEscapes)}}}","deep":{"x":["{{{Pick(LoneEscapes)}}}"]}}"""), "lone escapes in keys and nested values"),
        4 => (Nested(_random.Next(63, 3000)), "deep nesting"),
        5 => (Json($$"""{"temp":{{Pick(HugeNumbers)}},"other":[{{Pick(HugeNumbers)}}]}"""), "numbers out of range"),
        6 => (Json($$"""{"temp":1,"messageId":{{Pick(WrongTypes)}}}"""), "messageId of a wrong type"),
        7 => (Json("""{"temp":1,"messageId":"dup-a","messageId":"dup-b"}"""), "duplicate messageId"),
        8 => (Json($$"""{"temp":1,"messageId":"{{new string('m', _random.Next(190, 400))}}"}"""), "long messageId"),
        9 => (Json($$"""{"text":"{{Bidi()}}","ctl":"\u0001\u001f\u0085"}"""), "bidi and control characters in values"),
        10 => (_random.Next(2) == 0 ? [] : Encoding.UTF8.GetBytes(new string('z', 70_000)), "empty or oversized"),
        _ => (Encoding.UTF8.GetBytes(Bidi() + "\u0000text with NUL"), "text with NUL and bidi"),
    };

    private (byte[] Payload, string What) Answer()
    {
        var uuid = commands.Count > 0 && _random.Next(4) > 0 ? commands[_random.Next(commands.Count)].ToString() : Guid.NewGuid().ToString();
        return _random.Next(10) switch
        {
            0 => (InvalidUtf8(), "invalid UTF-8 answer"),
            1 => (Json($$"""{"uuid":"{{uuid}}","commandResult":"{{Pick(LoneEscapes)}}"}"""), "lone escape in commandResult"),
            2 => (Json($$"""{"uuid":"{{Pick(LoneEscapes)}}","commandResult":"PONG"}"""), "lone escape in uuid"),
            3 => (Json($$"""{"uuid":"{{uuid}}","deviceId":"{{Pick(LoneEscapes)}}","commandResult":"PONG"}"""), "lone escape in deviceId"),
            4 => (Json($$"""{"uuid":"{{uuid}}","commandResult":"A","commandResult":"ERROR_B"}"""), "duplicate commandResult"),
            5 => (Json($$"""{"uuid":"{{uuid}}","commandResult":{{Pick(WrongTypes)}}}"""), "commandResult of another type"),
            6 => (Json($$"""{"uuid":"{{uuid}}"}"""), "no commandResult"),
            7 => (Json($$"""{"uuid":"{{uuid}}","deviceId":"someone-else","commandResult":"PONG"}"""), "deviceId that disagrees"),
            8 => (Nested(_random.Next(63, 2000)), "deep answer"),
            _ => (Json($$"""{"uuid":"{{uuid}}","commandResult":"{{(_random.Next(2) == 0 ? "error_lower" : "ERROR_X")}}","n":{{Pick(HugeNumbers)}}}"""), "answer"),
        };
    }

    private (byte[] Payload, string What) Presence() => _random.Next(5) switch
    {
        0 => (InvalidUtf8(), "invalid UTF-8 presence"),
        1 => ("SIGN_IN\0"u8.ToArray(), "SIGN_IN with NUL"),
        2 => (Encoding.UTF8.GetBytes("sign_in"), "lower-case presence"),
        3 => (Encoding.UTF8.GetBytes(Bidi() + "\u2028SIGN_OUT"), "presence with separators"),
        _ => (Json($$"""{"status":"{{Pick(LoneEscapes)}}"}"""), "JSON presence"),
    };

    private (byte[] Id, string What) UserMessageId() => _random.Next(3) switch
    {
        0 when brokerPassesControlCharacters => ([0xC3, 0x28, 0xFF], "not UTF-8"),
        1 => (Encoding.UTF8.GetBytes(new string('u', 201)), "too long"),
        _ => ([], "empty"),
    };

    private static readonly string[] HugeNumbers = ["1e400", "-1e400", "1e-400", "123456789012345678901234567890123456789", "-0", "0.0000000000000000000000000001", new string('9', 5000)];

    private static readonly string[] WrongTypes = ["{\"a\":1}", "[1,2]", "true", "false", "null", "\"\"", "-1.5e3"];

    private byte[] InvalidUtf8()
    {
        byte[][] broken = [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80], [0x80]];
        var prefix = Encoding.UTF8.GetBytes("""{"messageId":"bad-""");
        return [.. prefix, .. Pick(broken), .. "\",\"t\":1}"u8.ToArray()];
    }

    private byte[] Nested(int depth)
    {
        var open = _random.Next(2) == 0 ? "[" : "{\"a\":";
        var close = open == "[" ? "]" : "}";
        return Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth)));
    }

    private string Bidi() => string.Concat(Enumerable.Range(0, 4).Select(_ => Pick(["\u202E", "\u2066", "\u200F", "\u2028", "\u061C", "\u200B", "\uFEFF"])));

    private static byte[] Json(string text) => Encoding.UTF8.GetBytes(text);

    private T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];

    public static int SeedFromEnvironment() =>
        int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed)
            ? seed
            : Random.Shared.Next();
}
