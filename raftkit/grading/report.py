"""What the grader says: failure descriptions, tables, JSON and CSV.

A failure is described by its ``error_type``, a one-paragraph ``message``
and ``where`` it happened, trimmed to what a student can act on: the
frames of their own code (``cell 5, line 12, in request_vote: ...``), the
scenario step that failed, the events just before a safety violation, or
the stacks of a deadlock (the stuck thread first).
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
import sysconfig
import traceback

from ..errors import CheckFailed, DeadlockError, NodeError, SafetyViolation

__all__ = ["describe_error", "replay_call", "trim_stack_dump", "format_submission", "format_report",
           "write_json", "write_csv", "student_frames"]

_KIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BATTERY = os.path.join(_KIT_DIR, "grading", "battery", "")  # the scenarios' package
_LIB_DIRS = tuple({os.path.abspath(p) for p in (sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib",
                                                                                      "purelib", "platlib")) if p})
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:,)? in (?P<func>\S+)\s*$')
MAX_WHERE_LINES = 14


def replay_call(exercise: int, scenario: str, seed: int) -> str:
    """The one line that replays a failing run in the student's notebook."""
    return f"c = raftkit.grading.replay({exercise}, {json.dumps(scenario)}, seed={seed})"


def _is_student_file(filename: str) -> bool:
    if filename.startswith("<cell "):
        return True
    if filename.startswith("<") or not filename:
        return False
    path = os.path.abspath(filename)
    return not (path.startswith(_KIT_DIR) or any(path.startswith(d) for d in _LIB_DIRS))


def _place(filename: str, line: int, func: str) -> str:
    if filename.startswith("<cell "):
        return f"{filename[1:-1]}, line {line}, in {func}"
    if re.search(r"ipykernel_\d+", filename) or re.search(r"<ipython-input-", filename):
        return f"your cell, line {line}, in {func}"
    return f"{os.path.basename(filename)}, line {line}, in {func}"


def student_frames(frames) -> list[str]:
    """``frames``: (filename, line, func, code) tuples, outermost first.
    Returns one line per frame of the student's code."""
    out = []
    for filename, line, func, code in frames:
        if _is_student_file(filename):
            code = (code or "").strip()
            out.append(f"{_place(filename, line, func)}: {code}" if code else _place(filename, line, func))
    return out


def _parse_traceback_text(text: str):
    """Frames out of a formatted traceback (or a thread stack)."""
    lines = text.splitlines()
    frames = []
    for k, line in enumerate(lines):
        m = _FRAME.match(line)
        if not m:
            continue
        code = ""
        if k + 1 < len(lines):
            nxt = lines[k + 1]
            if nxt.startswith("    ") and not _FRAME.match(nxt) and not set(nxt.strip()) <= set("^~ "):
                code = nxt.strip()
        frames.append((m["file"], int(m["line"]), m["func"], code))
    return frames


def _tb_frames(exc):
    return [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]


def _scenario_step(frames) -> str:
    """The last line of the scenario that ran (which step failed)."""
    for filename, _line, _func, code in reversed(frames):
        if os.path.abspath(filename).startswith(_BATTERY) and code and not code.startswith(("raise ", "expect(")):
            return f"scenario step: {code.strip()}"
    return ""


def _clip(lines, limit=MAX_WHERE_LINES):
    if len(lines) > limit:
        lines = lines[:limit - 1] + [f"... ({len(lines) - limit + 1} more lines)"]
    return "\n".join(lines)


def _not_written(frames, text):
    funcs = [f for fn, _, f, _ in frames if _is_student_file(fn)]
    where = f"{funcs[-1]}()" if funcs else "a method"
    return f"{where} is not written yet: it raises NotImplementedError ({text})" if text else \
        f"{where} is not written yet: it raises NotImplementedError"


def describe_error(e: BaseException) -> dict:
    """``{"error_type", "message", "where"}`` for a failed run."""
    kind = type(e).__name__
    if isinstance(e, DeadlockError):
        head = str(e).split("\n\n---", 1)[0].strip()
        lines = []
        for name, stack in e.stacks.items():
            mine = student_frames(_parse_traceback_text(stack))
            if mine:
                lines.append(f"thread {name}:")
                lines.extend("  " + x for x in mine[-4:])
        if not lines:  # no frame of theirs: show the first stack as it is
            for name, stack in list(e.stacks.items())[:1]:
                lines.append(f"thread {name}:")
                lines.extend("  " + x.strip() for x in stack.strip().splitlines()[-6:])
        return {"error_type": kind, "message": head, "where": _clip(lines)}
    if isinstance(e, NodeError):
        text = str(e)
        head = text.split("\n", 1)[0].strip()
        frames = _parse_traceback_text(text)
        last = text.strip().splitlines()[-1].strip()
        mine = student_frames(frames)
        if "raised NotImplementedError" in head:
            detail = last.split(":", 1)[1].strip() if ":" in last else ""
            return {"error_type": "NotImplementedError", "message": _not_written(frames, detail),
                    "where": _clip(mine)}
        if not mine and frames:
            f = frames[-1]
            mine = [f"{_place(f[0], f[1], f[2])}: {f[3]}"]
        if "raised MemoryError" in head:
            head = head.rstrip(": ") + " (your code reached the memory limit)"
        return {"error_type": kind, "message": head, "where": _clip(mine)}
    if isinstance(e, SafetyViolation):
        events = [str(ev).strip() for ev in e.trace[-8:]]
        where = ["the last events (time, node, what):"] + ["  " + x for x in events] if events else []
        return {"error_type": kind, "message": str(e).strip(), "where": _clip(where)}
    frames = _tb_frames(e)
    mine = student_frames(frames)
    if isinstance(e, NotImplementedError):
        return {"error_type": kind, "message": _not_written(frames, str(e)), "where": _clip(mine)}
    if isinstance(e, (CheckFailed, AssertionError)) and not mine:
        return {"error_type": "CheckFailed" if isinstance(e, CheckFailed) else "Failed",
                "message": str(e).strip(), "where": _scenario_step(frames)}
    message = f"{kind}: {e}".strip() if str(e) else kind
    if isinstance(e, MemoryError):
        message = "MemoryError: your code reached the memory limit"
    step = _scenario_step(frames)
    return {"error_type": kind, "message": message, "where": _clip(mine + ([step] if step and not mine else []))}


def trim_stack_dump(text: str) -> str:
    """A dump of every thread's stack at the time limit (the grader's own,
    ``Thread NAME:`` + traceback lines, outermost first; or faulthandler's,
    innermost first), cut to the student's frames, the scenario's thread first."""
    import linecache
    threads, current = [], None
    for line in text.splitlines():
        if line.startswith(("Thread ", "Current thread ")):
            name = line.split(" (most recent")[0].rstrip(":")
            current = [name, []]
            threads.append(current)
        elif current is not None:
            m = _FRAME.match(line)
            if m:
                current[1].append((m["file"], int(m["line"]), m["func"]))
    if "(most recent call first)" in text:  # faulthandler: innermost first
        for t in threads:
            t[1].reverse()
    lines = []
    for name, frames in threads:
        mine = [f for f in frames if _is_student_file(f[0])]
        if not mine:
            continue
        label = name.replace("Thread MainThread", "the scenario's own thread (it called your code)")
        lines.append(f"{label}:")
        for filename, line, func in mine[-4:]:
            code = linecache.getline(filename, line).strip()
            lines.append(f"  {_place(filename, line, func)}" + (f": {code}" if code else ""))
    if not lines and threads:
        lines = ["no frame of your code was on any stack; the innermost frames of the first thread:"]
        lines += [f"  {_place(f, n, fn)}" for f, n, fn in threads[0][1][-5:]]
    return _clip(lines)


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------

def _indent(text, prefix):
    return "\n".join(prefix + line for line in text.splitlines())


def format_submission(r: dict) -> str:
    """One notebook's result as a table with a line per scenario."""
    name = os.path.basename(r["notebook"]) if r.get("notebook") else "(not handed in)"
    if r.get("grader_error"):
        return f"{name}: GRADER ERROR: {r['grader_error']}"
    ex = r.get("exercise")
    title = f"exercise {ex}: {r.get('title', '')}" if ex else "exercise ?"
    lines = [f"{name}  ({title})  {r.get('score', 0)}/{r.get('max', 0)}"]
    if r.get("error"):
        lines.append(_indent(f"0 points: {r['error']}", "  "))
    for w in r.get("warnings", []):
        lines.append(f"  warning: {w}")
    if r.get("scenarios"):
        width = max(len(s["name"]) for s in r["scenarios"]) + 2
        lines.append(f"  {'scenario':<{width}} points  result")
        for s in r["scenarios"]:
            pts = f"{s['points']}/{s['max']}"
            seeds = [run["seed"] for run in s.get("runs", [])]
            if s["passed"]:
                result = f"ok (seeds {', '.join(map(str, seeds))})" if seeds else "ok"
                lines.append(f"  {s['name']:<{width}} {pts:>6}  {result}")
                continue
            message = s["message"].strip().splitlines() or ["failed"]
            lines.append(f"  {s['name']:<{width}} {pts:>6}  FAILED with seed {s['seed']}: {message[0]}")
            pad = " " * (width + 12)
            for extra in message[1:4]:
                lines.append(pad + extra)
            where = s.get("where", "").strip().splitlines()
            if len(where) == 1:
                lines.append(pad + "where: " + where[0].strip())
            elif where:
                lines.append(pad + "where:")
                lines.extend(pad + "  " + w for w in where)
            if s.get("replay"):
                lines.append(pad + "replay: " + s["replay"])
    return "\n".join(lines)


def format_report(results: list[dict]) -> str:
    """Every student's tables, then a summary line."""
    by_student: dict[str, list] = {}
    for r in results:
        by_student.setdefault(r.get("student", "?"), []).append(r)
    out = []
    for student, rs in by_student.items():
        total, most = sum(r.get("score", 0) for r in rs), sum(r.get("max", 0) for r in rs)
        out.append(f"=== {student}: {total}/{most}")
        out.extend(format_submission(r) for r in sorted(rs, key=lambda r: (r.get("exercise") or 99)))
        out.append("")
    broken = [r for r in results if r.get("grader_error")]
    out.append(f"{len(results)} notebook(s), {len(by_student)} student(s)"
               + (f", {len(broken)} GRADER ERROR(S)" if broken else ""))
    return "\n".join(out)


def write_json(results: list[dict], path: str, meta: dict | None = None) -> None:
    """Everything, per notebook and per scenario (score, max, message, seed, runs)."""
    doc = dict(meta or {}, submissions=results)
    text = json.dumps(doc, indent=1, default=str)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:  # replaced whole: a reader never sees half a file
        f.write(text + "\n")
    os.replace(tmp, path)


def write_csv(results: list[dict], path: str) -> None:
    """The class sheet: one row per student, one column per exercise."""
    from .battery import EXERCISES
    numbers = sorted({r["exercise"] for r in results if r.get("exercise")}) or sorted(EXERCISES)
    rows: dict[str, dict] = {}
    for r in results:
        row = rows.setdefault(r.get("student", "?"), {})
        ex = r.get("exercise")
        if ex:
            row[ex] = max(row.get(ex, 0), r.get("score", 0))
    maxima = {n: EXERCISES[n].max_points for n in numbers}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student"] + [f"exercise_{n}" for n in numbers] + ["total", "max"])
        for student in sorted(rows):
            row = rows[student]
            scores = [row.get(n, 0) for n in numbers]
            w.writerow([student] + scores + [sum(scores), sum(maxima.values())])
