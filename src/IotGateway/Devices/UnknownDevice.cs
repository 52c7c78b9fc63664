
namespace IotGateway.Devices;

public static class UnknownDevice
{
    // The one answer of every device route for an id the gateway has never seen (or has forgotten).
    public static ObjectResult UnknownDeviceProblem(this ControllerBase controller, string deviceId) =>
        controller.Problem(statusCode: StatusCodes.Status404NotFound, title: "Unknown device",
            detail: $"The gateway has never seen device '{deviceId}'. A device becomes known when it signs in or sends data.");
}
