"""``raftkit grade`` and ``raftkit release``.

    raftkit grade submissions/alice/*.ipynb --json grades.json --csv class.csv -j 4
    raftkit grade submissions/                 # every notebook below the folder
    raftkit grade nb.ipynb --only "vote counting" --seed 123     # re-run one failure
    raftkit release solutions/ exercises/

``grade`` exits 0 when grading itself worked, whatever the students scored;
2 when the grader broke on some notebook (or on bad arguments).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

__all__ = ["grade_main", "release_main", "grade_parser"]


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _seconds(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _seed_list(text):
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def grade_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raftkit grade",
        description="Grade exercise notebooks: each in its own process, with time and memory limits; "
                    "prints a table per student.")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK",
                   help="notebooks to grade (a folder means every .ipynb below it); the student is the "
                        "notebook's folder name")
    p.add_argument("--json", metavar="FILE", help="write every result as JSON (- for stdout)")
    p.add_argument("--csv", metavar="FILE", help="write the class sheet: one row per student")
    p.add_argument("-j", "--jobs", type=_positive_int, default=os.cpu_count() or 1,
                   help="notebooks graded at once (default: the number of CPUs)")
    p.add_argument("--exercise", type=int, help="grade as this exercise (default: from the notebook)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only scenarios whose name contains NAME (repeatable)")
    p.add_argument("--seed", type=int, action="append", dest="seeds", metavar="SEED",
                   help="run only this seed (repeatable): replays a reported failure")
    p.add_argument("--random-seeds", type=int, default=2, metavar="K",
                   help="fresh random seeds added to every scenario (default 2; 0 for none)")
    p.add_argument("--random-seed-list", type=_seed_list, metavar="A,B,...",
                   help="use these as the 'random' seeds (to repeat a grading run exactly)")
    p.add_argument("--scenario-timeout", type=_seconds, default=30.0, metavar="S",
                   help="wall seconds per scenario run (default 30)")
    p.add_argument("--notebook-timeout", type=_seconds, default=600.0, metavar="S",
                   help="wall seconds per notebook (default 600)")
    p.add_argument("--load-timeout", type=_seconds, default=60.0, metavar="S",
                   help="wall seconds to run a notebook's cells (default 60)")
    p.add_argument("--memory", type=_positive_int, default=2048, metavar="MB",
                   help="address-space limit of the student's processes (default 2048)")
    p.add_argument("--watchdog", type=_seconds, default=3.0, metavar="S",
                   help="wall seconds a node thread may run without yielding (default 3)")
    p.add_argument("--keep-going", action="store_true", help="run every seed even after a failure")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="grade even where bubblewrap cannot sandbox the student's code (not a grade for record: "
                        "the report says so)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    return p


def _expand(paths):
    out, missing = [], []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(f for f in glob.glob(os.path.join(p, "**", "*.ipynb"), recursive=True)
                           if ".ipynb_checkpoints" not in f)
            out.extend(found)
        elif os.path.exists(p):
            out.append(p)
        else:
            missing.append(p)
    return out, missing


def grade_main(argv=None) -> int:
    """``raftkit grade ...``; returns the exit status."""
    from .. import __version__
    from .report import format_report, write_csv, write_json
    from .runner import GradeOptions, grade_notebooks, pick_random_seeds

    args = grade_parser().parse_args(argv)
    paths, missing = _expand(args.notebooks)
    for m in missing:
        print(f"raftkit grade: {m}: no such file or folder", file=sys.stderr)
    if missing or not paths:
        if not paths and not missing:
            print("raftkit grade: no notebooks to grade", file=sys.stderr)
        return 2
    if not args.unsafe_no_sandbox:
        from ..isolation.sandbox import bwrap_problem
        problem = bwrap_problem()
        if problem is not None:
            print(f"raftkit grade: refusing to grade: {problem}. Student code must run in a sandbox for a grade "
                  "to count; pass --unsafe-no-sandbox to grade anyway (the report will say it was unsandboxed)",
                  file=sys.stderr)
            return 2
    if args.random_seed_list is not None:
        random_seeds = args.random_seed_list
    else:
        random_seeds = pick_random_seeds(max(0, args.random_seeds))
    options = GradeOptions(scenario_timeout=args.scenario_timeout, notebook_timeout=args.notebook_timeout,
                           load_timeout=args.load_timeout, memory_mb=args.memory, watchdog=args.watchdog,
                           random_seeds=random_seeds, exercise=args.exercise, only=args.only, seeds=args.seeds,
                           keep_going=args.keep_going, unsandboxed=args.unsafe_no_sandbox)
    progress = not args.no_progress and len(paths) > 1 and sys.stderr.isatty()
    try:
        results = grade_notebooks(paths, options, jobs=args.jobs, progress=progress)
    except KeyboardInterrupt:
        print("raftkit grade: interrupted; the workers were stopped", file=sys.stderr)
        return 130
    report = format_report(results)
    if args.quiet:
        report = report.splitlines()[-1]
    out = sys.stderr if args.json == "-" else sys.stdout  # keep stdout pure JSON for --json -
    print(report, file=out)
    if not args.seeds:
        listed = ",".join(map(str, random_seeds)) or "''"
        print(f"random seeds this run: {', '.join(map(str, random_seeds)) or 'none'} "
              f"(--random-seed-list {listed} repeats them)", file=out)
    meta = {"raftkit": __version__, "random_seeds": random_seeds,
            "options": {k: v for k, v in vars(options).items()}}
    try:
        if args.json:
            write_json(results, args.json, meta)
        if args.csv:
            write_csv(results, args.csv)
    except OSError as e:
        print(f"raftkit grade: cannot write results: {e}", file=sys.stderr)
        return 2
    return 2 if any(r.get("grader_error") for r in results) else 0


def release_main(argv=None) -> int:
    """``raftkit release SOLUTIONS EXERCISES``; returns the exit status."""
    from .release import ReleaseError, release
    p = argparse.ArgumentParser(
        prog="raftkit release",
        description="Write the student version of each solution notebook: the lines between "
                    "'### BEGIN SOLUTION' and '### END SOLUTION' become 'raise NotImplementedError', "
                    "outputs are cleared.")
    p.add_argument("solutions", help="folder of solution notebooks")
    p.add_argument("exercises", help="folder to write the student notebooks to")
    args = p.parse_args(argv)
    try:
        written = release(args.solutions, args.exercises)
    except (ReleaseError, OSError) as e:
        print(f"raftkit release: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a notebook nbformat cannot read
        print(f"raftkit release: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0
