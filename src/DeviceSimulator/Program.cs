using System.CommandLine;
using DeviceSimulator.Cli;

// Options and environment variables (the article's BROKER, DEVICE_ID, … are the defaults)
var command = SimulatorCommand.Create();

// Signals are ours (ShutdownSignal): System.CommandLine would kill the process two seconds after Ctrl+C,
// before a large fleet has signed out.
return await command.Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
