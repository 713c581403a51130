"""The graded scenarios of exercises 1-7.

Theory of operation
-------------------
Each exercise is a set of *scenarios*. A scenario is a function
``(ctx, impl, seed) -> None`` that raises on failure: ``ctx`` is the
:class:`~raftkit.grading.context.ScenarioContext` of this run (its
clusters, their watchdog), ``impl`` is the student's node class
(exercises 1-6) or a :class:`KVImpl` (exercise 7), ``seed`` seeds the
cluster and the scenario's own random choices, so one (scenario, seed)
pair is one exact, replayable run. Scenarios are of two kinds:

* **black-box**: an MIT 6.5840 tester scenario (same steps, same numbers)
  driven through the ``Cluster`` API, under the safety monitor, which checks
  Raft's invariants after every event (always on);
* **white-box**: the cluster is frozen, a handler of one node is called
  directly with hand-made arguments, and the node's answer and state are
  compared with Figure 2's rule. These name the rule that broke, and they
  are deterministic, so a classic bug is caught on every seed.

A scenario is worth its points only if it passes on every seed it is run
with: its fixed ``seeds`` plus the fresh random seeds the grader picks at
grading time (the same for the whole class). ``public`` scenarios (fixed
seeds only) are the ones the notebook's ``check()`` cell runs.

Clusters are made through :func:`cluster` / :func:`kv_cluster`, which record
them in the run's context so the runner can stop them and ``replay`` can
hand the failing one back to the student.

Where things are
----------------
``exercise``      what an exercise and a scenario are; ``EXERCISES``
``helpers``       checks (``expect``), clusters, white-box benches
``mit``           the MIT 6.5840 tester scenarios the exercises share
``ex1_election`` .. ``ex7_kv``   one module per exercise: its helpers,
                  its scenarios, and its grade sheet
"""

from __future__ import annotations

from ..context import ScenarioContext
from . import (  # noqa: F401  (each registers its exercise, in this order)
    ex1_election,
    ex2_request_vote,
    ex3_append_entries,
    ex4_leader,
    ex5_persistence,
    ex6_snapshots,
    ex7_kv,
)
from .ex7_kv import kv_cluster
from .exercise import EXERCISES, ClassSpec, Exercise, KVImpl, Scenario, exercise, scenario
from .helpers import ET, Failed, cluster, expect, figure8_sleep, frozen, rand_int
from .mit import (
    mit_backup,
    mit_basic_agree,
    mit_fail_agree,
    mit_fail_no_agree,
    mit_figure8,
    mit_initial_election,
    mit_many_elections,
    mit_persist1,
    mit_persist2,
    mit_persist3,
    mit_re_election,
    mit_rejoin,
    mit_unreliable_agree,
)

__all__ = ["Scenario", "Exercise", "ClassSpec", "KVImpl", "EXERCISES", "ScenarioContext", "cluster", "frozen",
           "kv_cluster", "exercise", "scenario", "Failed", "expect", "ET", "figure8_sleep", "rand_int",
           "mit_initial_election", "mit_re_election", "mit_many_elections", "mit_basic_agree", "mit_fail_agree",
           "mit_fail_no_agree", "mit_rejoin", "mit_backup", "mit_unreliable_agree", "mit_persist1", "mit_persist2",
           "mit_persist3", "mit_figure8"]
