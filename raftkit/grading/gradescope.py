"""Grading on Gradescope: its results format, and the autograder bundle.

Gradescope runs ``/autograder/run_autograder`` in a fresh container per
submission, with the student's files in ``/autograder/submission`` and
expects ``/autograder/results/results.json`` (format:
https://gradescope-autograders.readthedocs.io/en/latest/specs/). The bundle
built here installs the kit (and bubblewrap) in ``setup.sh`` and grades the
submission with ``raftkit grade ... --gradescope``: in bubblewrap's sandbox,
or where Docker lets bubblewrap make no namespaces, as a user of its own
(``run_autograder`` runs as root; ``raftkit.isolation.uidsandbox``).

    raftkit grade submission/ --gradescope results.json
    raftkit gradescope-autograder autograder.zip -- --random-seeds 2
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import zipfile

__all__ = ["gradescope_results", "write_gradescope", "build_autograder"]


def gradescope_results(results: list[dict]) -> dict:
    """One Gradescope test per scenario (a notebook that could not be
    graded is one failed test worth its exercise's points)."""
    tests = []
    for r in sorted(results, key=lambda r: (r.get("exercise") or 99, r.get("notebook") or "")):
        label = f"exercise {r.get('exercise') or '?'}: {r.get('title', '')}".rstrip(": ")
        problem = f"GRADER ERROR: {r['grader_error']}" if r.get("grader_error") else r.get("error")
        if problem or not r.get("scenarios"):
            tests.append(_test(label, r.get("score", 0), r.get("max", 0), problem or "no scenarios ran"))
            continue
        for s in r["scenarios"]:
            output = "passed" if s.get("passed") else "\n".join(
                filter(None, [s.get("message"), s.get("replay") and f"replay: {s['replay']}"]))
            tests.append(_test(f"{label} / {s['name']}", s.get("points", 0), s.get("max", 0), output))
    score = sum(t["score"] for t in tests)
    most = sum(t["max_score"] for t in tests)
    notes = sorted({w for r in results for w in r.get("warnings") or [] if "sandbox" in w})  # how it was graded
    return {"score": score, "output": "\n".join([f"raftkit: {score}/{most} points"] + notes), "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def _test(name, score, max_score, output) -> dict:
    return {"name": name, "score": score, "max_score": max_score, "output": output,
            "status": "passed" if score >= max_score else "failed", "visibility": "visible"}


def write_gradescope(results: list[dict], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(gradescope_results(results), f, indent=1)
    os.replace(tmp, path)


SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, when the autograder image is built.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip bubblewrap
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q /autograder/source/raftkit-src
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
RAFTKIT="${{RAFTKIT:-$ROOT/venv/bin/raftkit}}"
mkdir -p "$ROOT/results"
# Where bubblewrap cannot run (Docker), the student's code runs as a user of its own: keep the bundle private
# to root, and let it write nowhere here.
chmod -R go-rwx "$ROOT/source" 2>/dev/null || true
chmod 755 "$ROOT/results"
"$RAFTKIT" grade "$ROOT/submission" --gradescope "$ROOT/results/results.json" --no-progress {args}
status=$?
# raftkit writes results.json whenever it graded; anything else is reported, never a blank result.
if [ ! -s "$ROOT/results/results.json" ]; then
  printf '{{"score": 0, "output": "the grader could not run (exit %s); tell your instructor", "tests": []}}\\n' \\
    "$status" > "$ROOT/results/results.json"
fi
"""


def build_autograder(out_zip: str, grade_args: list[str], kit_root: str) -> str:
    """Write Gradescope's autograder zip: setup.sh, run_autograder, and the
    kit's source (``kit_root``: the folder holding pyproject.toml and
    raftkit/), without solutions or tests."""
    if not os.path.isfile(os.path.join(kit_root, "pyproject.toml")):
        raise FileNotFoundError(f"{kit_root} holds no pyproject.toml: the kit's source is needed to build the bundle")
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as z:
        _add_script(z, "setup.sh", SETUP)
        _add_script(z, "run_autograder", RUN.format(args=" ".join(map(shlex.quote, grade_args))))
        for path in _kit_files(kit_root):
            z.write(path, os.path.join("raftkit-src", os.path.relpath(path, kit_root)))
    return out_zip


def _add_script(z: zipfile.ZipFile, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFREG | 0o755) << 16
    z.writestr(info, text)


def _kit_files(kit_root: str):
    yield os.path.join(kit_root, "pyproject.toml")
    if os.path.exists(os.path.join(kit_root, "README.md")):
        yield os.path.join(kit_root, "README.md")
    for folder, dirs, files in os.walk(os.path.join(kit_root, "raftkit")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        yield from (os.path.join(folder, f) for f in sorted(files) if not f.endswith(".pyc"))
