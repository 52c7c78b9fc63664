using System.Collections.Concurrent;
using IotGateway.Data;
using Microsoft.EntityFrameworkCore;

namespace IotGateway.Devices;

// Which devices are signed in right now: loaded from the database at start, then kept current by the
// writer after each commit. The database stays the truth; this answers hot questions without a query.
public sealed class DeviceRegistry(GatewayMetrics metrics)
{
    private readonly ConcurrentDictionary<string, bool> _signedIn = new(StringComparer.Ordinal);

    public async Task LoadAsync(GatewayDbContext db, CancellationToken cancellationToken)
    {
        _signedIn.Clear();
        await foreach (var id in db.Devices.AsNoTracking().Where(d => d.SignedIn).Select(d => d.Id).AsAsyncEnumerable().WithCancellation(cancellationToken))
        {
            _signedIn[id] = true;
        }

        metrics.SignedInDevices = _signedIn.Count;
    }

    public bool IsSignedIn(string deviceId) => _signedIn.ContainsKey(deviceId);

    public void SetPresence(string deviceId, bool signedIn)
    {
        if (signedIn)
        {
            _signedIn[deviceId] = true;
        }
        else
        {
            _signedIn.TryRemove(deviceId, out _);
        }

        metrics.SignedInDevices = _signedIn.Count;
    }
}
