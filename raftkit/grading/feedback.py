"""The notebook side of grading: ``check()`` and ``replay()``.

``check(2, MyNode)`` runs exercise 2's public scenarios on your class, in
your kernel, and prints one line per scenario; a failure comes with its
seed and the line that replays it::

    c = raftkit.grading.replay(2, "vote counting", seed=1)
    c.show()      # the cluster at the moment it went wrong

``replay`` re-runs that scenario with that seed (same seed, same run) and
hands back the cluster: frozen where a check failed, or re-run to just
before the event that broke an invariant or raised, so that ``c.step()``
runs exactly that event.
"""

from __future__ import annotations

import sys

from ..errors import DeadlockError, NodeError, SafetyViolation
from . import battery
from .cells import check_classes
from .runs import run_scenario

__all__ = ["check", "replay", "rerun_before"]


def _exercise(number):
    if number not in battery.EXERCISES:
        raise ValueError(f"there is no exercise {number!r}; exercises are {sorted(battery.EXERCISES)}")
    return battery.EXERCISES[number]


def _user_namespace() -> dict:
    try:
        ip = get_ipython()
        return ip.user_ns
    except NameError:
        return vars(sys.modules["__main__"])


def _classes(ex, classes):
    """The student's classes: given, or looked up by name in the notebook.
    Returns (problems, classes)."""
    if classes:
        if len(classes) != len(ex.classes):
            names = ", ".join(s.name for s in ex.classes)
            return [f"exercise {ex.number} takes {len(ex.classes)} class(es): {names}"], []
        ns = {spec.name: cls for spec, cls in zip(ex.classes, classes)}
    else:
        ns = _user_namespace()
    return check_classes(ex, ns)


def check(exercise: int, *classes, quiet: bool = False) -> dict | None:
    """Run the public scenarios of ``exercise`` on your class(es) and print
    a pass/fail line per scenario (with the seed and a replay line on failure).

    >>> import raftkit
    >>> raftkit.grading.check(2, raftkit.ConsensusModule)   # doctest: +SKIP
    """
    ex = _exercise(exercise)
    problems, found = _classes(ex, classes)
    if problems:
        print(f"Exercise {ex.number} cannot be checked yet:")
        for p in problems:
            print("  " + p.replace("\n", "\n  "))
        return None
    impl = ex.make_impl(*found)
    public = [s for s in ex.scenarios if s.public]
    print(f"Exercise {ex.number}: {ex.title} ({len(public)} public scenarios)")
    passed, stuck = 0, False
    for sc in public:
        failure = None
        for seed in sc.seeds:
            run = run_scenario(sc, impl, seed, keep=True)
            stuck = stuck or any(c.clock.threads() for c in run["context"].clusters if c.virtual)
            if not run["ok"]:
                failure = run
                break
        if failure is None:
            passed += 1
            print(f"  PASS  {sc.name}")
            continue
        print(f"  FAIL  {sc.name} (seed {failure['seed']})")
        for line in failure["message"].strip().splitlines()[:6]:
            print(f"          {line}")
        if failure["where"]:
            print("          where:")
            for line in failure["where"].splitlines():
                print(f"            {line}")
        print(f"          replay: c = raftkit.grading.replay({ex.number}, \"{sc.name}\", seed={failure['seed']})")
    print(f"{passed}/{len(public)} public scenarios pass."
          + (" The grader also runs hidden scenarios, and every scenario with fresh random seeds."
             if passed == len(public) else ""))
    if stuck:
        print("A thread of your code is still running (stuck in a loop or on a lock): restart the kernel "
              "before you run more cells.")
    return None


def replay(exercise: int, scenario: str, seed: int, *classes):
    """Re-run one scenario of ``exercise`` with ``seed`` on your class(es)
    and return the cluster, ready for ``c.show()`` / ``c.step()``.

    If the run broke an invariant or your code raised, the cluster is re-run
    to just before that event (``c.step()`` then runs it); if a check failed,
    it is frozen where the check failed. ``c.failure`` says what happened.
    """
    ex = _exercise(exercise)
    sc = ex.scenario(scenario)
    problems, found = _classes(ex, classes)
    if problems:
        raise TypeError("; ".join(problems))
    impl = ex.make_impl(*found)
    run = run_scenario(sc, impl, seed, keep=True, stop=False)
    ctx = run.pop("context")
    clusters = ctx.clusters
    error = run.pop("error")
    if not clusters:
        print(f"{sc.name} (seed {seed}) made no cluster: {run['message'] or 'it passed'}")
        return None
    c = clusters[-1]
    for other in clusters[:-1]:
        other.stop()
    if run["ok"]:
        print(f"{sc.name} passes with seed {seed}: here is its cluster at the end of the run.")
        c.failure = None
        return c
    print(f"{sc.name}, seed {seed}: {run['message'].splitlines()[0] if run['message'] else run['error_type']}")
    from_clock = isinstance(error, (SafetyViolation, NodeError, DeadlockError))
    if from_clock and c.virtual and ctx.repeatable:
        failed_at = c.clock.events
        c.stop()
        c = rerun_before(c, failed_at - 1)
        print(f"The cluster is re-run to t={c.now:.4f} s, just before the event that went wrong: "
              "c.step() runs it.")
    elif from_clock:
        c.stop()
        print(f"The cluster is as it was when it went wrong (t={c.now:.4f} s); this scenario cannot be "
              "re-run step by step (it has clients, or calls handlers by hand). c.trace shows what happened.")
    else:
        print(f"The cluster is frozen where the check failed (t={c.now:.4f} s).")
    c.failure = run
    return c


def rerun_before(c, events: int):
    """A new cluster that repeats ``c``'s run and stops right after exactly
    ``events`` scheduler events."""
    return c.rerun(events=events)
