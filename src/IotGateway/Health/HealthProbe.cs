namespace IotGateway.Health;

// `dotnet IotGateway.dll healthcheck <url>`: the container HEALTHCHECK, since the runtime image has no curl.
public static class HealthProbe
{
    public static async Task<int> RunAsync(string url)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(new Uri(url));
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or UriFormatException)
        {
            await Console.Error.WriteLineAsync($"healthcheck {url}: {ex.Message}");
            return 1;
        }
    }
}
