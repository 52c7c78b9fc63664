namespace IotGateway.Devices;

// A device id becomes one MQTT topic level, so it must not be able to address anything else.
public static class DeviceIds
{
    public const int MaxLength = 128;

    public static bool IsValid(string? id) => Validate(id) is null;

    // Returns why the id is unusable, or null when it is fine.
    public static string? Validate(string? id)
    {
        if (string.IsNullOrEmpty(id))
        {
            return "A device id must not be empty.";
        }

        if (id.Length > MaxLength)
        {
            return $"A device id must be at most {MaxLength} characters.";
        }

        foreach (var c in id)
        {
            if (c is '/' or '+' or '#')
            {
                return $"A device id must be one MQTT topic level: '{c}' is not allowed.";
            }

            if (char.IsControl(c))
            {
                return "A device id must not contain NUL or other control characters.";
            }
        }

        // Kestrel leaves an encoded slash encoded in route values; it would still name two levels to a person.
        if (id.Contains("%2F", StringComparison.OrdinalIgnoreCase))
        {
            return "A device id must be one MQTT topic level: an encoded '/' (%2F) is not allowed.";
        }

        return null;
    }
}
