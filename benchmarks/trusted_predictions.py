"""What the grader's rule for predictions saves or costs on the solution
notebooks: a prediction that rests on a method the exercise has students
write is off while that exercise is graded (``hosted_class(...,
written=)``). Each solution's battery (fixed seeds, 101 and 202; node
processes unsandboxed, without the grader's processes) as graded, then with
every prediction trusted: wall time, round trips (``round_trips.py``), and
runs whose prediction failed (each then runs again without predictions).

    python benchmarks/trusted_predictions.py [EXERCISE ...]      (default: 3-6)
"""

import collections
import os
import sys
import time

from cores import on_one_core
from round_trips import counting

import raftkit.grading.runs as runs
from raftkit.grading import GradeOptions, battery
from raftkit.grading.isolated import class_spec_of
from raftkit.grading.notebook import read_cells
from raftkit.isolation.kvprocess import hosted_kv
from raftkit.isolation.process import hosted_class

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def solution_class(number: int, trust_all: bool = False):
    """(the exercise, its class spec, the stand-in class) of solution
    ``number``, as the grader loads it (unsandboxed)."""
    ex = battery.EXERCISES[number]
    path = os.path.join(ROOT, "solutions", ex.notebook + ".ipynb")
    _, cells = read_cells(path)
    spec = class_spec_of(cells, ex, GradeOptions(), os.path.dirname(path))
    if len(ex.classes) == 2:  # exercise 7: the store and the clerk
        return ex, spec, ex.make_impl(*hosted_kv(spec, None, None, tuple(c.name for c in ex.classes), predict=True))
    written = () if trust_all else ex.classes[0].methods
    return ex, spec, hosted_class(spec, ex.classes[0].name, None, None, predict=True, written=written)


def battery_of(number: int, trust_all: bool) -> tuple[float, int, int]:
    """(wall s, round trips, runs rerun) of solution ``number``'s battery."""
    ex, _, impl = solution_class(number, trust_all)
    frames, reruns = collections.Counter(), []
    mispredicted = runs.mispredicted

    def noted(cluster):
        why = mispredicted(cluster)
        reruns.extend([why] if why else [])
        return why

    runs.mispredicted = noted
    t0 = time.perf_counter()
    try:
        with counting(frames):
            for sc in ex.scenarios:
                for seed in (*sc.seeds, 101, 202):
                    assert runs.run_scenario(sc, impl, seed)["ok"], (sc.name, seed)
    finally:
        runs.mispredicted = mispredicted
    frames.pop("(node processes)", None)
    return time.perf_counter() - t0, sum(frames.values()), len(reruns)


@on_one_core
def main(exercises=range(3, 7)) -> None:
    for n in exercises:
        graded, trusted = battery_of(n, False), battery_of(n, True)
        print(f"exercise {n}: as graded {graded[0]:.1f} s, {graded[1]} round trips, {graded[2]} reruns; "
              f"every prediction trusted {trusted[0]:.1f} s, {trusted[1]} round trips, {trusted[2]} reruns")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or range(3, 7))
