
namespace IotGateway.Mqtt.Embedded;

internal sealed record StoredSessions(
    List<StoredBrokerSession> Sessions,
    ILookup<string, StoredBrokerSubscription> Subscriptions,
    ILookup<string, StoredBrokerMessage> Messages,
    long LastMessageId);

// Reads and writes the embedded broker's sessions with EF Core (LINQ only, so any provider the gateway supports).
internal sealed class SessionStore(IServiceScopeFactory scopes, DatabaseWriteGate writeGate)
{
    // Ids per statement: far below the parameter limits of SQLite (32,766) and PostgreSQL (65,535).
    private const int Chunk = 1000;

    public async Task<StoredSessions> LoadAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var sessions = await db.BrokerSessions.AsNoTracking().ToListAsync(cancellationToken);
        var subscriptions = await db.BrokerSubscriptions.AsNoTracking().ToListAsync(cancellationToken);
        var messages = await db.BrokerMessages.AsNoTracking().OrderBy(m => m.Id).ToListAsync(cancellationToken);
        return new StoredSessions(sessions, subscriptions.ToLookup(s => s.ClientId, StringComparer.Ordinal),
            messages.ToLookup(m => m.ClientId, StringComparer.Ordinal), messages.Count == 0 ? 0 : messages[^1].Id);
    }

    // Sessions the database refused on their own: written apart from the others until it takes them.
    private readonly HashSet<string> _refused = new(StringComparer.Ordinal);

    // The journal's changes, in one transaction. A row the database refuses (data it cannot keep, whatever the broker
    // let through) would fail that transaction at every write, and so every session's saving: then each session is
    // written apart, and the one refused is reported (refused) and its changes dropped; the rest are saved. A failure
    // of the database itself throws, with what is still unwritten (SessionWriteException.Unwritten).
    public async Task WriteAsync(SessionJournal.Changes changes,
        Func<string, (StoredBrokerSession Session, List<StoredBrokerSubscription> Subscriptions)?> snapshot,
        Action<string, string> refused, CancellationToken cancellationToken)
    {
        var parts = changes.ByClient();
        var apart = parts.Where(p => p.ClientId is { } id && _refused.Contains(id)).ToList();
        var together = SessionJournal.Changes.Merge(parts.Except(apart).Select(p => p.Part));
        try
        {
            await WriteOnceAsync(together, snapshot, cancellationToken);
        }
        catch (Exception ex) when (IsRefusedData(ex))
        {
            apart = parts;
        }
        catch (Exception ex)
        {
            throw new SessionWriteException(changes, ex);
        }

        for (var i = 0; i < apart.Count; i++)
        {
            var (clientId, part) = apart[i];
            try
            {
                await WriteOnceAsync(part, snapshot, cancellationToken);
                if (clientId is not null)
                {
                    _refused.Remove(clientId);
                }
            }
            catch (Exception ex) when (clientId is not null && IsRefusedData(ex))
            {
                if (_refused.Add(clientId))
                {
                    refused(clientId, ex.GetBaseException().Message);
                }
            }
            catch (Exception ex)
            {
                throw new SessionWriteException(SessionJournal.Changes.Merge(apart.Skip(i).Select(p => p.Part)), ex);
            }
        }
    }

    private static bool IsRefusedData(Exception ex) => ex is not OperationCanceledException && !DatabaseErrors.IsTransient(ex);

    // One transaction: sessions that are gone, sessions as they are now (snapshot), messages removed, messages added.
    private async Task WriteOnceAsync(SessionJournal.Changes changes,
        Func<string, (StoredBrokerSession Session, List<StoredBrokerSubscription> Subscriptions)?> snapshot, CancellationToken cancellationToken)
    {
        if (changes.IsEmpty)
        {
            return;
        }

        var current = changes.Changed.Select(id => (Id: id, State: snapshot(id))).ToList();
        var live = current.Where(c => c.State is not null).ToDictionary(c => c.Id, c => c.State!.Value, StringComparer.Ordinal);
        var gone = changes.Cleared.Union(current.Where(c => c.State is null).Select(c => c.Id), StringComparer.Ordinal).ToList();

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        using var gate = await writeGate.EnterAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);

        foreach (var ids in gone.Chunk(Chunk))
        {
            await db.BrokerMessages.Where(m => ids.Contains(m.ClientId)).ExecuteDeleteAsync(cancellationToken);
            await db.BrokerSubscriptions.Where(s => ids.Contains(s.ClientId)).ExecuteDeleteAsync(cancellationToken);
            await db.BrokerSessions.Where(s => ids.Contains(s.ClientId)).ExecuteDeleteAsync(cancellationToken);
        }

        foreach (var ids in live.Keys.Chunk(Chunk))
        {
            var existing = await db.BrokerSessions.Where(s => ids.Contains(s.ClientId)).ToDictionaryAsync(s => s.ClientId, StringComparer.Ordinal, cancellationToken);
            foreach (var id in ids)
            {
                var state = live[id].Session;
                if (existing.TryGetValue(id, out var row))
                {
                    db.Entry(row).CurrentValues.SetValues(state);
                }
                else
                {
                    db.BrokerSessions.Add(state);
                }
            }

            await db.BrokerSubscriptions.Where(s => ids.Contains(s.ClientId)).ExecuteDeleteAsync(cancellationToken);
            db.BrokerSubscriptions.AddRange(ids.SelectMany(id => live[id].Subscriptions));
        }

        foreach (var ids in changes.Removed.Chunk(Chunk))
        {
            await db.BrokerMessages.Where(m => ids.Contains(m.Id)).ExecuteDeleteAsync(cancellationToken);
        }

        // Only for sessions that have a row (written now or before): a message never blocks the write for good.
        var added = changes.Added.Values.ToList();
        var owners = added.Select(a => a.ClientId).Distinct(StringComparer.Ordinal).Where(id => !live.ContainsKey(id)).ToList();
        var stored = new HashSet<string>(live.Keys, StringComparer.Ordinal);
        foreach (var ids in owners.Chunk(Chunk))
        {
            stored.UnionWith(await db.BrokerSessions.Where(s => ids.Contains(s.ClientId)).Select(s => s.ClientId).ToListAsync(cancellationToken));
        }

        db.BrokerMessages.AddRange(added.Where(a => stored.Contains(a.ClientId)).Select(a => a.Delivery.ToStored(a.ClientId)));
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }
}

// The database failed (not the data): what is left unwritten goes back to the journal for the next write.
internal sealed class SessionWriteException(SessionJournal.Changes unwritten, Exception inner) : Exception(inner.Message, inner)
{
    public SessionJournal.Changes Unwritten { get; } = unwritten;
}
