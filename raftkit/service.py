"""The service side of a node: what receives its ``ApplyMsg`` stream.

``Service`` is the built-in state machine of the harness: it records every
message its node incarnation delivers, checks that commands arrive at
consecutive indexes (after an optional leading snapshot), and with
``snapshot_interval=k`` hands a snapshot of its state to Raft after every
k-th index, as MIT's tester does.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

from .errors import SafetyViolation
from .messages import ApplyMsg

__all__ = ["Service", "snapshot_due"]


def snapshot_due(snapshot_interval: int | None, msg: ApplyMsg) -> bool:
    """Whether applying ``msg`` makes the service snapshot its node's state
    (every ``snapshot_interval`` commands): the one apply that calls the node back."""
    return bool(snapshot_interval) and msg.command_valid and msg.command_index % snapshot_interval == 0


class Service:
    def __init__(self, node_id: int, snapshot_interval: int | None = None,
                 on_apply: Callable[[int, ApplyMsg], None] | None = None, clock=None):
        self.node_id = node_id
        self.clock = clock
        self.snapshot_interval = snapshot_interval
        self.on_apply = on_apply
        self.node = None                      # set once the node exists
        self.applied: list[ApplyMsg] = []     # this incarnation's stream, in order
        self.commands: dict[int, object] = {}  # index -> command, as far as this service knows
        self.last_index = 0

    def apply(self, msg: ApplyMsg) -> None:
        if msg.snapshot_valid:
            if msg.snapshot_index <= self.last_index and self.applied:
                raise SafetyViolation("Snapshots only move forward",
                                      f"node {self.node_id} delivered a snapshot at {msg.snapshot_index} "
                                      f"after applying up to {self.last_index}")
            self.restore(msg.snapshot)
            self.last_index = msg.snapshot_index
        elif msg.command_valid:
            if msg.command_index != self.last_index + 1:
                raise SafetyViolation("Apply in order",
                                      f"node {self.node_id} applied index {msg.command_index}, "
                                      f"expected {self.last_index + 1}")
            self.commands[msg.command_index] = msg.command
            self.last_index = msg.command_index
        self.applied.append(msg)
        if self.on_apply is not None:
            self.on_apply(self.node_id, msg)
        if msg.command_valid:
            self.execute(msg.command_index, msg.command)
            if snapshot_due(self.snapshot_interval, msg):
                self.node.snapshot(msg.command_index, self.dump())

    # -- what a state machine overrides ---------------------------------
    def execute(self, index: int, command) -> None:
        """Apply one committed command (the recording service only records it)."""

    def dump(self) -> bytes:
        """The service's state, for a snapshot."""
        return pickle.dumps(self.commands, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, data: bytes) -> None:
        """Load a snapshot made by ``dump``."""
        self.commands = pickle.loads(data) if data else {}
