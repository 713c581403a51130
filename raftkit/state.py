"""What a picture of the cluster reads: immutable copies of its state.

These types sit below both the harness (``cluster.py`` makes them, in
``Cluster.snapshot_state()``) and the drawings (``viz/`` reads them), so
neither has to import the other for its data.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClusterState", "NodeState"]


@dataclass(frozen=True)
class NodeState:
    """One node, as drawn: a read-only copy."""

    id: int
    alive: bool
    connected: bool
    state: str
    term: int
    voted_for: int | None
    log_terms: tuple
    last_included_index: int
    commit_index: int
    last_applied: int
    next_index: tuple
    match_index: tuple
    timer_started: float
    timer_timeout: float
    last_included_term: int = 0


@dataclass(frozen=True)
class ClusterState:
    """An immutable picture of the whole cluster, for drawing."""

    time: float
    nodes: tuple
    messages: tuple
    partition: tuple | None
