using IotGateway.Protocol;
using System.Threading.Channels;

namespace IotGateway.Commands;

// Group commit of Published marks. Each lane waits for its command's mark before it takes the next, so a command is
// never read as Pending again once it went out; lanes of many devices publish at once, and their marks are written
// together, one transaction while the previous one commits.
public sealed partial class PublishedMarks(ICommandStore store, CommandTransitions transitions, TimeProvider time, ILogger<PublishedMarks> logger)
{
    private const int MaxMarksPerTransaction = 4096;

    private readonly Channel<Mark> _marks = Channel.CreateUnbounded<Mark>(new UnboundedChannelOptions { SingleReader = true });

    // Completes once the mark is committed (or, when stopping, given up: the command then goes out once more after
    // the restart, and the device sees its uuid twice).
    public Task MarkAsync(Guid id, DateTimeOffset at)
    {
        var mark = new Mark(id, at, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_marks.Writer.TryWrite(mark))
        {
            mark.Done.TrySetResult();
        }

        return mark.Done.Task;
    }

    public void Complete() => _marks.Writer.TryComplete();

    // Runs until Complete; stopping lets it give up on a database that stays unusable.
    public async Task RunAsync(CancellationToken stopping)
    {
        var batch = new List<Mark>();
        while (await _marks.Reader.WaitToReadAsync(CancellationToken.None))
        {
            while (batch.Count < MaxMarksPerTransaction && _marks.Reader.TryRead(out var mark))
            {
                batch.Add(mark);
            }

            await WriteWithRetryAsync(batch, stopping);
            foreach (var mark in batch)
            {
                mark.Done.TrySetResult();
            }

            batch.Clear();
        }
    }

    private async Task WriteWithRetryAsync(List<Mark> batch, CancellationToken stopping)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var published = await store.MarkPublishedAsync([.. batch.Select(m => (m.Id, m.At))], CancellationToken.None);
                if (published.Count > 0)
                {
                    var at = batch.ToDictionary(m => m.Id, m => m.At);
                    transitions.Announce([.. published.Select(p => new CommandTransition(p.Id, p.DeviceId, CommandStatus.Published, at[p.Id]))]);
                }

                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Keep trying: the lanes wait (and send nothing more) until their marks are written.
                LogMarkFailed(batch.Count, attempt, ex.GetBaseException().Message);
                if (stopping.IsCancellationRequested && attempt >= 3)
                {
                    return;
                }

                await Task.Delay(Backoff.Delay(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5), attempt), time);
            }
        }
    }

    private sealed record Mark(Guid Id, DateTimeOffset At, TaskCompletionSource Done);

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot mark {Count} commands Published (attempt {Attempt}); they are not sent again meanwhile: {Reason}")]
    private partial void LogMarkFailed(int count, int attempt, string reason);
}
