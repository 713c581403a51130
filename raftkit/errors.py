"""The errors raftkit raises. `RaftkitError` is the base of them all."""

from __future__ import annotations


class RaftkitError(Exception):
    """Base class of every raftkit error."""


class CheckFailed(RaftkitError):
    """A harness check (`check_one_leader`, `one`, `wait`, ...) failed."""


class SafetyViolation(RaftkitError):
    """A Raft safety invariant broke.

    `event` is the trace event after which the monitor saw it, `invariant`
    names the rule, `trace` is the trace up to and including `event`.
    """

    def __init__(self, invariant: str, message: str, event=None, trace=()):
        where = f"\n  after event: {event}" if event is not None else ""
        super().__init__(f"{invariant}: {message}{where}")
        self.invariant = invariant
        self.event = event
        self.trace = list(trace)


class DeadlockError(RaftkitError):
    """A node thread stopped yielding: lock held across a blocking call,
    a raw threading wait, or an infinite loop. `stacks` maps thread names to
    formatted stacks."""

    def __init__(self, message: str, stacks: dict[str, str] | None = None):
        self.stacks = dict(stacks or {})
        text = message
        for name, stack in self.stacks.items():
            text += f"\n\n--- {name} ---\n{stack.rstrip()}"
        super().__init__(text)


class NodeError(RaftkitError):
    """Node code raised an exception in one of its threads. The message
    carries the node, the thread and the traceback."""
