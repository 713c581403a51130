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
import os
import sys

__all__ = ["grade_main", "release_main", "grade_parser", "autograder_main"]


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
                        "first folder below the one given, or the one after submitted/ (nbgrader)")
    p.add_argument("--json", metavar="FILE", help="write every result as JSON (- for stdout)")
    p.add_argument("--csv", metavar="FILE", help="write the class sheet: one row per student")
    p.add_argument("--gradescope", metavar="FILE", help="write Gradescope's results.json (one test per scenario)")
    p.add_argument("--feedback", metavar="FOLDER",
                   help="write a feedback page per student (FOLDER/<student>.html: scenarios, failures, replay "
                        "lines, a diagram of each failing run's last events)")
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
    p.add_argument("--sandbox", choices=("auto", "bwrap", "uid", "none"), default="auto",
                   help="around the student's code: bwrap (bubblewrap), uid (a user of its own, for a root grader "
                        "where bubblewrap cannot run), none (not a grade for record: the report says so); "
                        "auto (default): bwrap if it runs, else uid if root, else refuse")
    p.add_argument("--unsafe-no-sandbox", action="store_const", const="none", dest="sandbox",
                   help="the same as --sandbox none")
    p.add_argument("--resume", action="store_true",
                   help="go on from the --json file of an interrupted run: skip notebooks it already graded "
                        "(with its random seeds)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    return p


def grade_main(argv=None) -> int:
    """``raftkit grade ...``; returns the exit status."""
    from .parent import grade_notebooks
    from .report import format_report, write_csv, write_json
    from .submissions import find_submissions, missing_results

    args = grade_parser().parse_args(argv)
    if args.resume and args.json in (None, "-"):
        print("raftkit grade: --resume needs --json FILE (the results it goes on from)", file=sys.stderr)
        return 2
    found = find_submissions(args.notebooks, forced_exercise=args.exercise)
    for m in found.missing:
        print(f"raftkit grade: {m}: no such file or folder", file=sys.stderr)
    for path, why in found.skipped:
        print(f"raftkit grade: skipped {path}: {why}", file=sys.stderr)
    if found.missing or not found.submissions:
        if not found.submissions and not found.missing:
            print("raftkit grade: no notebooks to grade", file=sys.stderr)
        return 2
    refusal = _sandbox_refusal(args, found.submissions)
    if refusal:
        print(f"raftkit grade: refusing to grade: {refusal}", file=sys.stderr)
        return 2
    try:
        earlier_meta, earlier = _earlier_results(args.json) if args.resume else (None, {})
    except ValueError as e:
        print(f"raftkit grade: --resume: {e}", file=sys.stderr)
        return 2
    options, meta = _options(args, earlier_meta)
    subs = found.submissions
    done = {s.path: _owned(s, earlier[s.path]) for s in subs if s.path in earlier}
    todo = [s for s in subs if s.path not in done]
    if done:
        print(f"raftkit grade: --resume: {len(done)} notebook(s) already graded in {args.json}", file=sys.stderr)

    def save(k, result):  # as each notebook finishes: an interrupted run keeps what it finished
        done[todo[k].path] = _owned(todo[k], result)
        if args.json:
            write_json([done[s.path] for s in subs if s.path in done], args.json, dict(meta, complete=False))

    progress = not args.no_progress and len(todo) > 1 and sys.stderr.isatty()
    try:
        grade_notebooks([s.path for s in todo], options, jobs=args.jobs, progress=progress, on_result=save)
    except KeyboardInterrupt:
        kept = f"; {len(done)} result(s) kept in {args.json} (--resume goes on)" if args.json else ""
        print(f"raftkit grade: interrupted; the workers were stopped{kept}", file=sys.stderr)
        return 130
    results = [done[s.path] for s in subs] + missing_results(subs)
    _print_report(format_report(results), args, options.random_seeds)
    try:
        if args.json:
            write_json(results, args.json, dict(meta, complete=True, skipped=found.skipped))
        if args.csv:
            write_csv(results, args.csv)
        if args.gradescope:
            from .gradescope import write_gradescope
            write_gradescope(results, args.gradescope)
        if args.feedback:
            from .feedback_page import write_feedback_pages
            write_feedback_pages(results, args.feedback)
    except OSError as e:
        print(f"raftkit grade: cannot write results: {e}", file=sys.stderr)
        return 2
    return 2 if any(r.get("grader_error") for r in results) else 0


def _sandbox_refusal(args, submissions) -> str | None:
    """Why the chosen sandbox cannot grade for record here (None: it can).
    Resolves ``args.sandbox`` (``auto``) to the sandbox that will be used."""
    from .isolated import choose_sandbox, readable_secrets
    args.sandbox, problem = choose_sandbox(args.sandbox)
    if problem is not None:
        return (f"{problem}. Student code must run in a sandbox for a grade to count; pass --sandbox none to grade "
                "anyway (the report will say it was unsandboxed)")
    if args.sandbox != "uid":
        return None
    classmates = args.notebooks if len({s.student for s in submissions}) > 1 else []
    readable = readable_secrets(classmates)
    if not readable:
        return None
    shown = "\n  ".join(f"{f}" for files in readable.values() for f in files[:4])
    return ("bubblewrap cannot run here, and in its place (a user of its own for the student's code) other users "
            f"can read these files, so every student's code could:\n  {shown}\nMake them private first: "
            f"chmod -R o-rwx {' '.join(readable)}")


def _options(args, earlier_meta: dict | None):
    """The run's options and the metadata saved with its results. A resumed
    run keeps the random seeds of the run it goes on from."""
    from .. import __version__
    from .options import GradeOptions, pick_random_seeds
    if args.random_seed_list is not None:
        random_seeds = args.random_seed_list
    elif earlier_meta and isinstance(earlier_meta.get("random_seeds"), list):
        random_seeds = earlier_meta["random_seeds"]
    else:
        random_seeds = pick_random_seeds(max(0, args.random_seeds))
    options = GradeOptions(scenario_timeout=args.scenario_timeout, notebook_timeout=args.notebook_timeout,
                           load_timeout=args.load_timeout, memory_mb=args.memory, watchdog=args.watchdog,
                           random_seeds=random_seeds, exercise=args.exercise, only=args.only, seeds=args.seeds,
                           keep_going=args.keep_going, sandbox=args.sandbox)
    meta = {"raftkit": __version__, "random_seeds": random_seeds, "options": dict(vars(options))}
    return options, meta


def _owned(submission, result: dict) -> dict:
    """The result, with the student the layout names; a notebook the grader
    could not read still counts against its exercise's points."""
    from .battery import EXERCISES
    result = dict(result, student=submission.student)
    number = result.get("exercise") or submission.exercise
    if number in EXERCISES:
        result["exercise"] = number
        result["title"] = result.get("title") or EXERCISES[number].title
        result["max"] = result.get("max") or EXERCISES[number].max_points
    return result


def _earlier_results(path: str) -> tuple[dict | None, dict]:
    """What an earlier (perhaps interrupted) run saved: its metadata, and
    its results by notebook path, grader errors left out (they are redone)."""
    import json
    if not os.path.exists(path):
        return None, {}
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        subs = doc["submissions"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a results file of raftkit grade ({type(e).__name__}: {e})") from None
    return doc, {r["notebook"]: r for r in subs
                 if isinstance(r, dict) and r.get("notebook") and not r.get("grader_error")}


def _print_report(report: str, args, random_seeds) -> None:
    if args.quiet:
        report = report.splitlines()[-1]
    out = sys.stderr if args.json == "-" else sys.stdout  # keep stdout pure JSON for --json -
    print(report, file=out)
    if not args.seeds:
        listed = ",".join(map(str, random_seeds)) or "''"
        print(f"random seeds this run: {', '.join(map(str, random_seeds)) or 'none'} "
              f"(--random-seed-list {listed} repeats them)", file=out)


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


def autograder_main(argv=None) -> int:
    """``raftkit gradescope-autograder OUT.zip [-- GRADE ARGS]``; returns the exit status."""
    from .gradescope import build_autograder
    argv = list(argv or [])
    grade_args = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(
        prog="raftkit gradescope-autograder",
        description="Build Gradescope's autograder zip (setup.sh, run_autograder, the kit's source). "
                    "Arguments after -- are passed to `raftkit grade` for every submission.")
    p.add_argument("zip", help="the zip file to write")
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    bad = grade_parser().parse_known_args(["x.ipynb", *grade_args])[1]
    if bad:
        print(f"raftkit gradescope-autograder: not options of raftkit grade: {' '.join(bad)}", file=sys.stderr)
        return 2
    kit_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # above raftkit/
    try:
        build_autograder(args.zip, grade_args, kit_root)
    except OSError as e:
        print(f"raftkit gradescope-autograder: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.zip}: upload it as the assignment's autograder on Gradescope")
    return 0
