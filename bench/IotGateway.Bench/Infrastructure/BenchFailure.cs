namespace IotGateway.Bench.Infrastructure;

/// <summary>
/// A benchmark could not produce its figures (a process did not start, a count stalled, a timeout ran out).
/// The message is shown to the user as it is, so it says what happened and, where it helps, what to do.
/// </summary>
public sealed class BenchFailure(string message, Exception? inner = null) : Exception(message, inner);
