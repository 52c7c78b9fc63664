using IotGateway.Bench;

return await BenchProgram.RunAsync(args);
