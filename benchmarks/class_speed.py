"""Grading throughput for a synthetic class: ``students`` students, each
handing in one exercise notebook (exercise 2, RequestVote), a mix of honest
solutions and classic bugs (every third student forgets to reset the
election timer on a granted vote, every fifth counts votes of a finished
election),
graded with ``raftkit grade -j 2`` as an instructor would: fixed seeds plus
2 fresh random seeds per scenario.

    .venv/bin/python benchmarks/class_speed.py [students]
"""

import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = "02-request-vote.ipynb"
BUGS = {  # (old, new) in the solution's code: one classic bug each
    "no-timer-reset": ("self.election_reset_event = self.clock.now()  #", "pass  #"),
    "stale-votes": ("if self.state != CANDIDATE or self.current_term != args.term:",
                    "if self.state != CANDIDATE:"),
}


def make_class(folder: str, students: int) -> list[str]:
    with open(os.path.join(ROOT, "solutions", NOTEBOOK)) as f:
        solution = json.load(f)
    for k in range(students):
        bug = "no-timer-reset" if k % 3 == 2 else "stale-votes" if k % 5 == 4 else None
        nb = json.loads(json.dumps(solution))
        if bug:
            old, new = BUGS[bug]
            [cell] = [c for c in nb["cells"] if old in "".join(c["source"])]
            cell["source"] = "".join(cell["source"]).replace(old, new, 1)
        os.makedirs(os.path.join(folder, f"student{k:03d}"))
        with open(os.path.join(folder, f"student{k:03d}", NOTEBOOK), "w") as f:
            json.dump(nb, f)
    return [os.path.join(folder, f"student{k:03d}", NOTEBOOK) for k in range(students)]


def main(students: int = 100, jobs: int = 2):
    from raftkit.grading import GradeOptions, grade_notebooks
    from raftkit.grading.options import pick_random_seeds

    with tempfile.TemporaryDirectory() as folder:
        paths = make_class(folder, students)
        t0 = time.perf_counter()
        results = grade_notebooks(paths, GradeOptions(random_seeds=pick_random_seeds(2)), jobs=jobs)
        wall = time.perf_counter() - t0
    full = sum(r["score"] == r["max"] > 0 for r in results)
    broken = sum(bool(r.get("grader_error")) for r in results)
    print(f"grading a class of {students} (exercise 2, honest and buggy mixed, -j {jobs}): {wall:.1f} s wall, "
          f"{students / wall * 60:.0f} students/minute; {full} full marks, {broken} grader errors")
    return wall


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
