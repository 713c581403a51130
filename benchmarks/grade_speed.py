"""Wall time to grade one complete submission: the 7 solution notebooks
(exercises 1-7) with the default options of ``raftkit grade`` (every
scenario's fixed seeds plus 2 fresh random seeds, one worker process per
notebook, as many at once as there are CPUs). Target: < 60 s."""

import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(jobs=None, random_seeds=2):
    from raftkit.grading import GradeOptions, grade_notebooks
    from raftkit.grading.runner import pick_random_seeds

    paths = sorted(glob.glob(os.path.join(ROOT, "solutions", "*.ipynb")))
    jobs = jobs or os.cpu_count() or 1
    options = GradeOptions(random_seeds=pick_random_seeds(random_seeds))
    t0 = time.perf_counter()
    results = grade_notebooks(paths, options, jobs=jobs)
    wall = time.perf_counter() - t0
    runs = sum(len(s["runs"]) for r in results for s in r["scenarios"])
    score = sum(r["score"] for r in results)
    most = sum(r["max"] for r in results)
    slowest = max(results, key=lambda r: r.get("time", 0))
    print(f"grading one complete submission ({len(paths)} notebooks, {runs} scenario runs, -j {jobs}): "
          f"{wall:.1f} s wall, score {score}/{most}; slowest notebook "
          f"{os.path.basename(slowest['notebook'])} {slowest.get('time', 0):.1f} s")
    if score != most:
        print("  (a solution notebook did not get full marks: run `raftkit grade solutions/`)", file=sys.stderr)
    return wall


if __name__ == "__main__":
    main()
