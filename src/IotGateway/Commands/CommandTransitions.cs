using IotGateway.Events;
using IotGateway.Observability;

namespace IotGateway.Commands;

// A command that entered Status at At (Result: a device's answer).
public readonly record struct CommandTransition(Guid Id, string DeviceId, CommandStatus Status, DateTimeOffset At, string? Result = null);

// What follows every committed status change, in one place: for a finish, CommandCompletion first (waiters here and
// on every instance; the dispatcher drops the command from the lane that still holds it), then the transition metric
// and the live events of devices someone follows.
public sealed class CommandTransitions(CommandCompletion completion, EventHub events, GatewayMetrics metrics)
{
    private static readonly int StatusCount = Enum.GetValues<CommandStatus>().Length;

    // Commands that all entered `status` at `at`.
    public void Announce(CommandStatus status, IReadOnlyCollection<CommandChanged> changed, DateTimeOffset at) =>
        Announce([.. changed.Select(c => new CommandTransition(c.Id, c.DeviceId, status, at))]);

    // Commands that entered statuses of their own at times of their own (a batch's answers or Published marks).
    public void Announce(IReadOnlyCollection<CommandTransition> transitions)
    {
        if (transitions.Count == 0)
        {
            return;
        }

        var finished = transitions.Where(t => !Command.IsOpen(t.Status)).Select(t => t.Id).ToList();
        if (finished.Count > 0)
        {
            completion.Finished(finished);
        }

        var counts = new int[StatusCount];
        foreach (var transition in transitions)
        {
            counts[(int)transition.Status]++;
            if (events.Wants(transition.DeviceId))
            {
                events.Publish(ServerEvent.Command(transition.DeviceId, transition.Id, transition.Status, transition.At, transition.Result));
            }
        }

        for (var status = 0; status < counts.Length; status++)
        {
            if (counts[status] > 0)
            {
                metrics.CommandTransition((CommandStatus)status, counts[status]);
            }
        }
    }
}
