using System.Collections.Concurrent;

namespace IotGateway.Tcp;

// The open connection of each TCP device. A connection is one device; a second connection for the same device
// replaces the first, which is closed.
public sealed class TcpDevices
{
    private readonly ConcurrentDictionary<string, TcpDeviceConnection> _connections = new(StringComparer.Ordinal);

    public int Count => _connections.Count;

    public bool TryGet(string deviceId, out TcpDeviceConnection connection) => _connections.TryGetValue(deviceId, out connection!);

    // Returns the connection it replaced, if any.
    internal TcpDeviceConnection? Attach(string deviceId, TcpDeviceConnection connection)
    {
        TcpDeviceConnection? replaced = null;
        _connections.AddOrUpdate(deviceId, connection, (_, old) =>
        {
            replaced = old;
            return connection;
        });
        return ReferenceEquals(replaced, connection) ? null : replaced;
    }

    // True when this connection was still the device's (it was not replaced meanwhile).
    internal bool Detach(string deviceId, TcpDeviceConnection connection) =>
        _connections.TryRemove(new KeyValuePair<string, TcpDeviceConnection>(deviceId, connection));

    internal IEnumerable<TcpDeviceConnection> All => _connections.Values;
}
