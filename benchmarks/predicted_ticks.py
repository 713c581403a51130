"""Exercises' batteries on the reference node with every node in a process
of its own, strict and as the grader runs them (idle election-timer ticks
predicted, the harness's get_state() and a follower's submit() too, and
the turns of threads started together sent or started ahead, and RPCs
whose outcome the mirror tells: heartbeats accepted, replies read;
``hosted_class(..., predict=True)``): wall time, runs, ticks, calls,
turns and RPCs predicted, and predictions that failed (each such run is run again
strictly, so its time counts twice). Every scenario runs on its fixed seeds and two
more (101, 202), node processes unsandboxed, without the grader's worker
processes. The two modes alternate exercise by exercise.

    python benchmarks/predicted_ticks.py [EXERCISE ...]      (default: 1-6)
"""

import sys
import time

from cores import on_one_core

import raftkit
from raftkit.grading import battery
from raftkit.grading.runs import run_scenario
from raftkit.isolation.process import class_spec, hosted_class, mispredicted

EXTRA_SEEDS = (101, 202)


def battery_time(exercises, impl) -> tuple[float, int, int, int, int, int, int]:
    """The batteries of ``exercises`` with node class ``impl``: (wall
    seconds, runs, ticks predicted, runs whose prediction failed, calls
    predicted, turns sent or started ahead, RPCs predicted: heartbeats
    accepted and replies read)."""
    runs = predicted = failed = calls = turns = rpcs = 0
    t0 = time.perf_counter()
    for n in exercises:
        for sc in battery.EXERCISES[n].scenarios:
            for seed in (*sc.seeds, *EXTRA_SEEDS):
                run = run_scenario(sc, impl, seed, stop=False, keep=True)
                ctx = run["context"]
                failed += any(mispredicted(c) for c in ctx.clusters)
                hosts = [c._hosts for c in ctx.clusters if c._hosts is not None]
                predicted += sum(h.predicted for h in hosts)
                calls += sum(h.predicted_calls for h in hosts)
                turns += sum(h.turns_ahead for h in hosts)
                rpcs += sum(h.predicted_handlers + h.predicted_replies for h in hosts)
                ctx.stop()
                runs += 1
    return time.perf_counter() - t0, runs, predicted, failed, calls, turns, rpcs


@on_one_core
def main(exercises=range(1, 7)) -> None:
    total = {False: 0.0, True: 0.0}
    for n in exercises:
        for predict in (False, True):
            impl = hosted_class(class_spec(raftkit.ConsensusModule), predict=predict)
            wall, runs, predicted, failed, calls, turns, rpcs = battery_time([n], impl)
            total[predict] += wall
            print(f"exercise {n}, {'predicted' if predict else 'strict':<9}: {wall:5.1f} s, {runs} runs, "
                  f"{predicted} ticks, {calls} calls, {turns} turns and {rpcs} RPCs predicted, "
                  f"{failed} failed predictions",
                  flush=True)
    print(f"all: strict {total[False]:.1f} s, predicted {total[True]:.1f} s "
          f"({100 * (total[True] / total[False] - 1):+.0f}%)")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or range(1, 7))
