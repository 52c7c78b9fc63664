using System.Collections.Concurrent;
using System.Data.Common;
using IotGateway.Observability;

namespace IotGateway.Devices;

// Which devices are signed in right now, and which talk TCP: loaded from the database at start, then kept current by
// the writer after each commit. The database stays the truth; this answers hot questions without a query.
public sealed class DeviceRegistry(GatewayMetrics metrics)
{
    private readonly ConcurrentDictionary<string, bool> _signedIn = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _tcp = new(StringComparer.Ordinal);

    // A TCP device's sign-in is committed: commands waiting for it can go out now.
    public event Action<string>? TcpDeviceSignedIn;

    // At start, from plain SQL (the start does without EF Core): the devices signed in or talking TCP.
    public async Task LoadAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        _signedIn.Clear();
        _tcp.Clear();
        await using var query = connection.CreateCommand();
        query.CommandText = $"""SELECT "Id", "SignedIn", "Transport" = '{DeviceTransports.Tcp}' FROM "Devices" WHERE "SignedIn" OR "Transport" = '{DeviceTransports.Tcp}'""";
        await using var reader = await query.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (reader.GetBoolean(1))
            {
                _signedIn[reader.GetString(0)] = true;
            }

            if (reader.GetBoolean(2))
            {
                _tcp[reader.GetString(0)] = true;
            }
        }

        metrics.SignedInDevices = _signedIn.Count;
    }

    public bool IsSignedIn(string deviceId) => _signedIn.ContainsKey(deviceId);

    // Its last sign-in came over the TCP listener: its commands go to its connection, never to the broker.
    public bool IsTcp(string deviceId) => _tcp.ContainsKey(deviceId);

    // via: the transport the change came over when it says how the device connects (see PresenceWrite).
    public void SetPresence(string deviceId, bool signedIn, string? via = null)
    {
        if (signedIn)
        {
            _signedIn[deviceId] = true;
        }
        else
        {
            _signedIn.TryRemove(deviceId, out _);
        }

        if (via == DeviceTransports.Tcp)
        {
            _tcp[deviceId] = true;
        }
        else if (via == DeviceTransports.Mqtt)
        {
            _tcp.TryRemove(deviceId, out _);
        }

        metrics.SignedInDevices = _signedIn.Count;
        if (signedIn && via == DeviceTransports.Tcp)
        {
            TcpDeviceSignedIn?.Invoke(deviceId);
        }
    }
}
