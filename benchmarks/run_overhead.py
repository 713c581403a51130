"""What the grader adds to each run, beyond the run itself: one short
scenario of the exercise-6 solution (its follower's InstallSnapshot rules,
three nodes) graded with RUNS seeds, nodes isolated and in-process, against
the same runs made one after another in this process (no grader, nodes
unsandboxed). Per run: the grader's wall time over the notebook's and the
runs' own.

    python benchmarks/run_overhead.py [RUNS]
"""

import os
import sys
import time

from cores import on_one_core

import raftkit
from raftkit.grading import GradeOptions, battery, grade_notebooks
from raftkit.grading.runs import run_scenario
from raftkit.isolation.process import class_spec, hosted_class

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "solutions", "06-snapshots.ipynb")
SCENARIO = "install snapshot (follower)"


def graded(isolation: str, seeds) -> float:
    t0 = time.perf_counter()
    [result] = grade_notebooks([NOTEBOOK], GradeOptions(only=[SCENARIO], seeds=seeds, isolation=isolation), jobs=1)
    assert result["error"] is None and result["score"] == result["max"] > 0, result
    return time.perf_counter() - t0


def in_this_process(impl, seeds) -> float:
    scenario = battery.EXERCISES[6].scenario(SCENARIO)
    t0 = time.perf_counter()
    for seed in seeds:
        assert run_scenario(scenario, impl, seed)["ok"]
    return time.perf_counter() - t0


@on_one_core  # (the runs made here as the grader's worker makes them)
def main(runs: int = 60) -> None:
    seeds = list(range(1, runs + 1))
    ex = battery.EXERCISES[6]
    isolated = hosted_class(class_spec(raftkit.ConsensusModule), predict=True, written=ex.classes[0].methods)
    for name, isolation, impl in (("isolated", "process", isolated), ("in-process", "none", raftkit.ConsensusModule)):
        whole, alone = graded(isolation, seeds), in_this_process(impl, seeds)
        one = graded(isolation, seeds[:1])  # the notebook's own cost: its worker, loader and template
        print(f"{name:>10}: {runs} runs graded in {whole:.2f} s ({one:.2f} s for one), {alone:.2f} s made here: "
              f"the grader adds {1e3 * (whole - one - alone * (runs - 1) / runs) / (runs - 1):.1f} ms per run")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
