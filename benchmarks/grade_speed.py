"""Wall time to grade one complete submission: the 7 solution notebooks
(exercises 1-7) with the default options of ``raftkit grade`` (every
scenario's fixed seeds plus 2 fresh random seeds, one worker process per
notebook, as many at once as there are CPUs). Target: < 60 s; with every
node in a sandboxed process of its own (the default since nodes are
isolated), < 30 s with -j 2. SEEDS (say 101,202) replaces the fresh random
seeds, so that two versions compared grade the same runs. Busy
core-seconds: the whole machine's, from /proc/stat.

    python benchmarks/grade_speed.py [JOBS] [process|none] [SEEDS]
"""

import glob
import os
import sys
import time

from node_process_cost import busy_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(jobs=None, random_seeds=2, isolation="process", seeds=None):
    from raftkit.grading import GradeOptions, grade_notebooks
    from raftkit.grading.options import pick_random_seeds

    paths = sorted(glob.glob(os.path.join(ROOT, "solutions", "*.ipynb")))
    jobs = jobs or os.cpu_count() or 1
    options = GradeOptions(random_seeds=seeds or pick_random_seeds(random_seeds), isolation=isolation)
    t0, busy = time.perf_counter(), busy_seconds()
    results = grade_notebooks(paths, options, jobs=jobs)
    wall, busy = time.perf_counter() - t0, busy_seconds() - busy
    runs = sum(len(s["runs"]) for r in results for s in r["scenarios"])
    score = sum(r["score"] for r in results)
    most = sum(r["max"] for r in results)
    slowest = max(results, key=lambda r: r.get("time", 0))
    print(f"grading one complete submission ({len(paths)} notebooks, {runs} scenario runs, -j {jobs}, "
          f"nodes {'isolated' if isolation == 'process' else 'in-process'}): "
          f"{wall:.1f} s wall ({busy:.0f} busy core-seconds), score {score}/{most}; slowest notebook "
          f"{os.path.basename(slowest['notebook'])} {slowest.get('time', 0):.1f} s")
    if score != most:
        print("  (a solution notebook did not get full marks: run `raftkit grade solutions/`)", file=sys.stderr)
    return wall


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None, isolation=sys.argv[2] if len(sys.argv) > 2 else "process",
         seeds=[int(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else None)
