"""Which notebooks to grade, and whose they are: the layouts courses have.

Understood, below each folder given to ``raftkit grade``:

* nbgrader's ``submitted/<student>/<assignment>/<notebook>.ipynb`` (the
  student is the folder right after ``submitted``);
* a folder per student, ``<student>/<notebook>.ipynb``, with any folders
  in between (a student's ``work`` folder, say): the student is the first folder
  below the one given;
* one student's folder, ``alice/<notebook>.ipynb``: the student is the
  folder given.

Notebook files named on the command line are read the same way, relative to
the folder they all share. Skipped, each with a note: Jupyter's duplicates
(``... -Copy1.ipynb``), checkpoints, hidden folders, and notebooks that are
not an exercise of this kit (no raftkit metadata, no exercise number in the
name). A student who handed in some exercises but not one that classmates
handed in gets that exercise listed with 0 (:func:`missing_results`).

Reading a notebook here only parses its JSON for the exercise number; a
notebook that cannot be parsed is still graded, so that its student gets
the grader's clear message and a 0.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field

from .battery import EXERCISES

__all__ = ["Submission", "Found", "find_submissions", "missing_results"]

_COPY = re.compile(r"-Copy\d+\.ipynb$")
_NUMBER = re.compile(r"\D*0*([1-9])\D")


@dataclass(frozen=True)
class Submission:
    student: str
    path: str                 # absolute path of the notebook
    exercise: int | None      # as the notebook says (None: the grader decides and explains)


@dataclass
class Found:
    submissions: list[Submission] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, why)
    missing: list[str] = field(default_factory=list)               # arguments that do not exist


def find_submissions(paths: list[str], *, forced_exercise: int | None = None) -> Found:
    """The notebooks below ``paths`` (files or folders), each with its
    student; what was skipped and why. ``forced_exercise`` (``--exercise``)
    keeps notebooks that do not name an exercise."""
    found = Found()
    files = [p for p in paths if os.path.isfile(p)]
    found.missing = [p for p in paths if not os.path.exists(p)]
    candidates = [(p, os.path.dirname(os.path.abspath(p)) if len(files) == 1 else _common_folder(files))
                  for p in files]
    for folder in (p for p in paths if os.path.isdir(p)):
        candidates += [(nb, os.path.abspath(folder)) for nb in _notebooks_below(folder, found)]
    seen = set()
    for path, root in candidates:
        path = os.path.abspath(path)
        if path in seen:
            continue
        seen.add(path)
        if _COPY.search(path):
            found.skipped.append((path, "a Jupyter duplicate (-CopyN); the original is graded"))
            continue
        exercise = exercise_named_by(path)
        if exercise is None and forced_exercise is None and _is_readable_notebook(path):
            found.skipped.append((path, "not an exercise of this kit (no raftkit metadata, no number in "
                                        "its name); pass --exercise N to grade it as one"))
            continue
        found.submissions.append(Submission(student_of(path, root), path, forced_exercise or exercise))
    return found


def student_of(path: str, root: str) -> str:
    """Whose notebook ``path`` is, found below the folder ``root``."""
    parts = os.path.relpath(os.path.abspath(path), root).split(os.sep)
    if "submitted" in parts[:-2]:
        return parts[parts.index("submitted") + 1]
    if len(parts) > 1:
        return parts[0]
    return os.path.basename(root) or "?"


def exercise_named_by(path: str) -> int | None:
    """The exercise number in the notebook's raftkit metadata, else in its
    file name (``03-append-entries.ipynb``); None when neither says."""
    meta = _metadata(path)
    number = meta.get("exercise") if isinstance(meta, dict) else None
    if type(number) is int and number in EXERCISES:  # not True, which equals 1
        return number
    stems = {ex.notebook: n for n, ex in EXERCISES.items()}
    stem = os.path.basename(path)[: -len(".ipynb")]
    if stem in stems:
        return stems[stem]
    m = _NUMBER.match(os.path.basename(path))
    return int(m.group(1)) if m and int(m.group(1)) in EXERCISES else None


def missing_results(submissions: list[Submission]) -> list[dict]:
    """A 0 for every exercise some student handed in and another did not."""
    handed_in: dict[str, set] = {}
    for s in submissions:
        handed_in.setdefault(s.student, set()).add(s.exercise)
    graded = set().union(*handed_in.values()) - {None} if handed_in else set()
    out = []
    for student in sorted(handed_in):
        for number in sorted(graded - handed_in[student]):
            ex = EXERCISES[number]
            out.append({"notebook": None, "student": student, "exercise": number, "title": ex.title,
                        "score": 0, "max": ex.max_points, "grader_error": None, "warnings": [], "scenarios": [],
                        "error": f"no notebook for exercise {number} ({ex.notebook}.ipynb) was handed in"})
    return out


def _notebooks_below(folder: str, found: Found) -> list[str]:
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.ipynb"), recursive=True)):
        rel = os.path.relpath(path, folder).split(os.sep)
        if any(p == ".ipynb_checkpoints" or p.startswith(".") for p in rel[:-1]):
            continue  # checkpoints and hidden folders are not hand-ins
        out.append(path)
    return out


def _common_folder(files: list[str]) -> str:
    return os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])


def _metadata(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except (OSError, ValueError):
        return None
    meta = nb.get("metadata") if isinstance(nb, dict) else None
    return meta.get("raftkit") if isinstance(meta, dict) else None


def _is_readable_notebook(path: str) -> bool:
    """Parses as a JSON notebook (an unreadable one is graded, to report it)."""
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(nb, dict) and isinstance(nb.get("cells"), list)
