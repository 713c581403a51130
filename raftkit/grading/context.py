"""What one run of one scenario carries: :class:`ScenarioContext`.

Whoever runs a scenario (the grader's run process, ``check()``,
``replay()``, ``raftkit mutants``, a test) makes a context and passes it as
the scenario's first argument: ``scenario(ctx, impl, seed)``. The scenario
makes its clusters through it (``battery.cluster(ctx, ...)``), so they get
the context's watchdog and are recorded; afterwards the caller stops them,
or hands the last one to the student. A scenario that calls node handlers by
hand, or drives a cluster with clerks, says so, because ``Cluster.rerun``
cannot repeat such a run step by step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

__all__ = ["ScenarioContext", "WATCHDOG"]

WATCHDOG = 5.0  # wall seconds a node thread may run without yielding, unless the caller says less


@dataclass
class ScenarioContext:
    """The clusters one scenario run made, and what its caller must know about them."""

    watchdog: float = WATCHDOG            # passed to every cluster the scenario makes
    clusters: list = field(default_factory=list)
    repeatable: bool = True               # False once handlers are called by hand or clerks drive a cluster

    def keep(self, cluster):
        """Record a cluster the scenario made (the caller stops it); returns it."""
        self.clusters.append(cluster)
        return cluster

    def not_repeatable(self) -> None:
        """This run cannot be repeated by ``Cluster.rerun`` (handlers called
        by hand, or clerks driving the cluster from outside the nodes)."""
        self.repeatable = False

    def stop(self) -> None:
        """Stop every cluster made (a cluster the student's code broke may fail to: ignored)."""
        for c in self.clusters:
            with contextlib.suppress(Exception):
                c.stop()
