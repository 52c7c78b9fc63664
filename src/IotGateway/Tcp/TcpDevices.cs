using System.Collections.Concurrent;
using System.Threading.Channels;
using IotGateway.Ingest;

namespace IotGateway.Tcp;

// The open connection of each TCP device. A connection is one device; a second connection for the same device
// replaces the first, which is closed.
public sealed class TcpDevices : IDisposable
{
    private readonly ConcurrentDictionary<string, TcpDeviceConnection> _connections = new(StringComparer.Ordinal);

    // A connection's attach and its SIGN_IN are queued as one step, as are a detach and its SIGN_OUT: so the ingest
    // stores each device's presence in the order its connections came and went, and an old connection's SIGN_OUT
    // cannot land after its successor's SIGN_IN.
    private readonly SemaphoreSlim _presence = new(1, 1);

    public int Count => _connections.Count;

    public bool TryGet(string deviceId, out TcpDeviceConnection connection) => _connections.TryGetValue(deviceId, out connection!);

    // Attaches the connection and queues the device's SIGN_IN; returns the connection it replaced, if any.
    internal async Task<TcpDeviceConnection?> SignInAsync(string deviceId, TcpDeviceConnection connection, InboundMessage signIn,
        ChannelWriter<InboundMessage> ingest, CancellationToken cancellationToken)
    {
        await _presence.WaitAsync(cancellationToken);
        try
        {
            var replaced = Attach(deviceId, connection);
            await ingest.WriteAsync(signIn, cancellationToken);
            return replaced;
        }
        finally
        {
            _presence.Release();
        }
    }

    // Detaches the connection and queues the device's SIGN_OUT, unless a newer connection replaced it. False when
    // nothing was queued.
    internal async Task<bool> SignOutAsync(string deviceId, TcpDeviceConnection connection, Func<InboundMessage> signOut,
        ChannelWriter<InboundMessage> ingest, CancellationToken cancellationToken)
    {
        await _presence.WaitAsync(cancellationToken);
        try
        {
            if (!Detach(deviceId, connection))
            {
                return false;
            }

            await ingest.WriteAsync(signOut(), cancellationToken);
            return true;
        }
        finally
        {
            _presence.Release();
        }
    }

    private TcpDeviceConnection? Attach(string deviceId, TcpDeviceConnection connection)
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
    private bool Detach(string deviceId, TcpDeviceConnection connection) =>
        _connections.TryRemove(new KeyValuePair<string, TcpDeviceConnection>(deviceId, connection));

    public void Dispose() => _presence.Dispose();
}
