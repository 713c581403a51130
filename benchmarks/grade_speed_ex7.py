"""Wall time to grade exercise 7's solution notebook alone, its KV store
and clerk in the grading process (``none``) or in sandboxed processes of
their own (``process``, the default of ``raftkit grade``), alternating, with
the same two "random" seeds so that both grade the same runs.

    python benchmarks/grade_speed_ex7.py [ROUNDS]
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(rounds=2):
    from raftkit.grading import GradeOptions, grade_notebooks
    path = os.path.join(ROOT, "solutions", "07-kv-exactly-once.ipynb")
    for _ in range(rounds):
        for isolation in ("none", "process"):
            t0 = time.perf_counter()
            [r] = grade_notebooks([path], GradeOptions(random_seeds=[101, 202], isolation=isolation), jobs=1)
            runs = sum(len(s["runs"]) for s in r["scenarios"])
            print(f"exercise 7 ({runs} scenario runs), store and clerk "
                  f"{'in sandboxed processes' if isolation == 'process' else 'in-process'}: "
                  f"{time.perf_counter() - t0:.1f} s wall, score {r['score']}/{r['max']}, "
                  f"load average {os.getloadavg()[0]:.0f}", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
