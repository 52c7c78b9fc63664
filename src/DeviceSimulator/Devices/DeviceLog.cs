namespace DeviceSimulator.Devices;

// The article's console lines. A fleet prefixes them with the device id and keeps them quiet unless --verbose
// (ten thousand devices would drown the terminal; the fleet prints totals instead). Problems the gateway
// should hear about, such as a malformed command, are always printed.
internal sealed class DeviceLog(TextWriter writer, string? prefix, bool eachMessage)
{
    public bool EachMessage => eachMessage;

    public void Step(string line)
    {
        if (eachMessage)
        {
            Write(line);
        }
    }

    public void Problem(string line) => Write(line);

    private void Write(string line) => writer.WriteLine(prefix is null ? line : $"[{prefix}] {line}");
}
