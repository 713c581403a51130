"""Reading a submitted notebook: its code cells to run (all but those
tagged ``raftkit-check`` or ``raftkit-skip``) and which exercise it is."""

from __future__ import annotations

import json
import os
import re

from . import battery

__all__ = ["SKIP_TAGS", "SubmissionError", "read_cells", "which_exercise"]

SKIP_TAGS = {"raftkit-check", "raftkit-skip"}


class SubmissionError(Exception):
    """The submission cannot be graded (its message is for the student)."""


def read_cells(path: str):
    """The notebook (a dict) and its code cells to run: [(cell number, source)].

    Plain JSON, not nbformat: importing nbformat and its schema validator
    costs more than grading a whole exercise."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except FileNotFoundError:
        raise SubmissionError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SubmissionError(f"{name} is not a readable Jupyter notebook ({type(e).__name__}: "
                              f"{str(e).strip()[:200]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        version = nb.get("nbformat") if isinstance(nb, dict) else None
        if type(version) is int and version < 4:
            raise SubmissionError(f"{name} is a Jupyter notebook of format {nb.get('nbformat')}: open it in "
                                  "Jupyter and save it again (format 4)")
        raise SubmissionError(f"{name} is not a readable Jupyter notebook (no list of cells in it)")
    cells = []
    for number, cell in enumerate(nb["cells"], 1):
        if not isinstance(cell, dict):
            raise SubmissionError(f"{name} is not a readable Jupyter notebook (cell {number} is not an object)")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            raise SubmissionError(f"{name} is not a readable Jupyter notebook (cell {number} has no source text)")
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tags = metadata.get("tags") if isinstance(metadata.get("tags"), list) else []
        if {t for t in tags if isinstance(t, str)} & SKIP_TAGS or source.lstrip().startswith("# raftkit: skip"):
            continue
        cells.append((number, source))
    return nb, cells


def which_exercise(path: str, nb, forced: int | None) -> int:
    if forced is not None:
        if forced not in battery.EXERCISES:
            raise SubmissionError(f"there is no exercise {forced} (exercises are 1-{len(battery.EXERCISES)})")
        return forced
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    meta = meta.get("raftkit") if isinstance(meta.get("raftkit"), dict) else {}
    number = meta.get("exercise")
    if type(number) is int and number in battery.EXERCISES:  # not True, which equals 1
        return number
    m = re.match(r"\D*0*([1-9])\D", os.path.basename(path))
    if m and int(m.group(1)) in battery.EXERCISES:
        return int(m.group(1))
    raise SubmissionError(f"{os.path.basename(path)}: cannot tell which exercise this is (no raftkit "
                          "exercise number in the notebook's metadata, none in its file name); "
                          "pass --exercise N")
