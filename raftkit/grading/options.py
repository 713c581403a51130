"""What a grading run is given (its limits and seeds, :class:`GradeOptions`)
and the result a notebook gets when its grading broke."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

__all__ = ["GradeOptions", "pick_random_seeds", "student_of", "grader_error"]


@dataclass
class GradeOptions:
    """Limits and seeds of one grading run (JSON-able: sent to workers)."""

    scenario_timeout: float = 30.0      # wall seconds per (scenario, seed) run
    notebook_timeout: float = 600.0     # wall seconds for a whole notebook
    load_timeout: float = 60.0          # wall seconds to execute the notebook's cells
    memory_mb: int | None = 2048        # RLIMIT_AS of the student's processes (None: no limit)
    watchdog: float = 3.0               # cluster watchdog (stuck node thread), wall seconds
    random_seeds: list = field(default_factory=list)  # fresh seeds, added to every scenario's own
    exercise: int | None = None         # force the exercise number
    only: list | None = None            # run only scenarios whose name contains one of these
    seeds: list | None = None           # run only these seeds (replaces fixed + random)
    keep_going: bool = False            # run every seed even after a failure
    isolation: str = "process"          # "process": each node in its own process; "none": the old way
    sandbox: str = "auto"               # "bwrap", "uid" (a user of its own), "none" (not for record), "auto"


def pick_random_seeds(k: int) -> list[int]:
    """``k`` fresh seeds, different at every grading run."""
    return [secrets.randbelow(10**6) + 1000 for _ in range(k)]


def student_of(path: str) -> str:
    """The student a submission belongs to: the name of its folder."""
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or "?"


def grader_error(path, message):
    """The result of a notebook whose grading broke (not the student's fault)."""
    return {"notebook": os.path.abspath(path), "student": student_of(path), "exercise": None, "title": "",
            "score": 0, "max": 0, "error": None, "grader_error": message, "warnings": [], "scenarios": []}
