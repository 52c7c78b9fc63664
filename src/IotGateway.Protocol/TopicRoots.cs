namespace IotGateway.Protocol;

// The article's four topic roots (DATA_TOPIC, CMD_REQ_TOPIC, CMD_RESP_TOPIC, REGISTER_TOPIC); a device's own topic is
// {root}/{deviceId}.
public sealed record TopicRoots(
    string Data = TopicRoots.DefaultData,
    string CommandRequest = TopicRoots.DefaultCommandRequest,
    string CommandResponse = TopicRoots.DefaultCommandResponse,
    string Register = TopicRoots.DefaultRegister)
{
    public const string DefaultData = "iot/data";
    public const string DefaultCommandRequest = "iot/cmd/req";
    public const string DefaultCommandResponse = "iot/cmd/resp";
    public const string DefaultRegister = "iot/register";

    public static TopicRoots Default { get; } = new();

    public DeviceTopics For(string deviceId) =>
        new(DeviceTopic(Data, deviceId), DeviceTopic(CommandRequest, deviceId), DeviceTopic(CommandResponse, deviceId), DeviceTopic(Register, deviceId));

    public static string DeviceTopic(string root, string deviceId) => $"{root}/{deviceId}";
}

// One device's own topics.
public sealed record DeviceTopics(string Data, string CommandRequest, string CommandResponse, string Register);
