using System.ComponentModel.DataAnnotations;
using IotGateway.Devices;

namespace IotGateway.Api;

// Rejects, with a 400, any device id that is not exactly one MQTT topic level.
[AttributeUsage(AttributeTargets.Parameter | AttributeTargets.Property)]
public sealed class DeviceIdAttribute : ValidationAttribute
{
    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext) =>
        DeviceIds.Validate(value as string) is { } error ? new ValidationResult(error) : ValidationResult.Success;
}
