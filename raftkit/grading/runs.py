"""One scenario run with one seed in this process (:func:`run_scenario`,
what the grader's run process, ``check()``, ``replay()`` and ``raftkit
mutants`` share), the events a failing run keeps, and
:func:`grade_in_process`: a whole battery in this process (tests, notebooks)."""

from __future__ import annotations

import contextlib
import time

from ..isolation.process import mispredicted, strict
from . import battery
from .context import ScenarioContext
from .report import describe_error, replay_call

__all__ = ["run_scenario", "last_events", "event_rows", "FEEDBACK_EVENTS", "grade_in_process"]


def run_scenario(sc, impl, seed: int, *, watchdog: float | None = None, stop: bool = True, keep: bool = False):
    """Run one scenario with one seed in this process. Returns a run dict
    (``ok``, ``error_type``, ``message``, ``where``, ``time``); with
    ``keep=True`` also ``error`` (the exception) and ``context`` (the
    :class:`ScenarioContext`: the clusters made, whether ``rerun`` can repeat them).
    A run whose node processes failed a predicted tick is run again with
    ``impl`` strict (``isolation.process.strict``): what it returns is
    always the strict run's."""
    ctx = ScenarioContext() if watchdog is None else ScenarioContext(watchdog=watchdog)
    t0 = time.perf_counter()
    error = None
    try:
        sc.run(ctx, impl, seed)
    except (Exception, SystemExit) as e:  # a check, an invariant, the student's exception (or exit())
        error = e
    clusters = ctx.clusters
    if any(mispredicted(c) for c in clusters) and _predicts(impl):  # not the real run: run it without predictions
        ctx.stop()
        impl = type(impl)(*map(strict, impl)) if isinstance(impl, tuple) else strict(impl)  # (exercise 7: two)
        return run_scenario(sc, impl, seed, watchdog=watchdog, stop=stop, keep=keep)
    elapsed = time.perf_counter() - t0
    if stop:
        ctx.stop()
    out = {"ok": error is None, "seed": seed, "time": round(elapsed, 3), "error_type": "", "message": "",
           "where": ""}
    if error is not None:
        out.update(describe_error(error))
        if clusters:  # for the feedback page's diagram of the moments before the failure
            out["events"] = last_events(clusters[-1])
    if keep:
        out["error"], out["context"] = error, ctx
    return out


def _predicts(impl) -> bool:
    """Whether ``impl`` (a node class, or exercise 7's pair) is run with predictions."""
    return any(getattr(cls, "raftkit_predict", False) for cls in (impl if isinstance(impl, tuple) else (impl,)))


FEEDBACK_EVENTS = 60  # events kept from a failing run, for the feedback page


def last_events(cluster, n: int = FEEDBACK_EVENTS) -> list[list]:
    """The cluster's last ``n`` events as plain rows (time, kind, node, peer, detail)."""
    with contextlib.suppress(Exception):  # a cluster broken by the student's code may not answer
        return [[e.time, e.kind, e.node, e.peer, e.detail] for e in cluster.trace[-n:]]
    return []


def event_rows(rows) -> list[list]:
    """Event rows read back from a run's process, checked: at most
    ``FEEDBACK_EVENTS`` rows of (number, str, int|None, int|None, str)."""
    if not isinstance(rows, list):
        return []
    ok = [r for r in rows[-FEEDBACK_EVENTS:]
          if isinstance(r, list) and len(r) == 5 and isinstance(r[0], (int, float)) and isinstance(r[1], str)
          and all(x is None or type(x) is int for x in r[2:4])]
    return [[float(t), k[:40], n, p, str(d)[:300]] for t, k, n, p, d in ok]


def grade_in_process(exercise: int, *classes, seeds=None, only=None) -> dict:
    """Run an exercise's whole battery on classes of this process (no
    subprocesses, no time limit): a quick way for instructors to try a
    reference or a broken class."""
    ex = battery.EXERCISES[exercise]
    impl = ex.make_impl(*classes)
    result = {"exercise": exercise, "title": ex.title, "max": ex.max_points, "scenarios": []}
    for sc in ex.scenarios:
        if only and not any(o.lower() in sc.name.lower() for o in only):
            continue
        entry = {"name": sc.name, "points": 0, "max": sc.points, "passed": True, "message": "", "where": "",
                 "seed": None, "replay": ""}
        for seed in (seeds or sc.seeds):
            run = run_scenario(sc, impl, seed)
            if not run["ok"]:
                entry.update(passed=False, seed=seed, message=run["message"], where=run["where"],
                             replay=replay_call(exercise, sc.name, seed))
                break
        entry["points"] = sc.points if entry["passed"] else 0
        result["scenarios"].append(entry)
    result["score"] = sum(s["points"] for s in result["scenarios"])
    return result
