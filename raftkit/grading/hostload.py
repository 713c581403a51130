"""Loading a student's node class from notebook cells: runs inside a node
process template (``raftkit.isolation``), never in a process that grades."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

__all__ = ["run_cells", "preload"]


def preload() -> None:
    """Load what ``run_cells`` needs, and the standard modules node code
    commonly imports, before a sandbox's switch to a user of its own (the
    Python installation may not be readable by that user)."""
    import importlib

    from . import battery, cells, procs  # noqa: F401
    for name in ("IPython.core.interactiveshell", "traitlets.config", "bisect", "collections", "copy",
                 "dataclasses", "enum", "functools", "heapq", "itertools", "json", "math", "random",
                 "statistics", "typing"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def run_cells(cells, exercise: int, folder: str, memory_mb, progress=None):
    """Execute ``cells`` as the notebook would and return ``(class, info)``:
    the exercise's node class (None if the notebook does not define it
    properly) and ``{"ok", "error", "warnings"}`` for the report."""
    from . import battery
    from .cells import load_cells, make_shell
    from .procs import limit_memory
    limit_memory(memory_mb)
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="raftkit-ipython-")
    make_shell()  # imported before the notebook's folder joins sys.path (at the end: it shadows nothing)
    with contextlib.suppress(OSError):
        os.chdir(folder)
    sys.path.append(folder)
    loaded = load_cells(list(cells), battery.EXERCISES[exercise], progress=progress)
    classes = loaded.pop("classes", None)
    info = {"ok": bool(loaded.get("ok")), "error": loaded.get("error"), "warnings": list(loaded.get("warnings", []))}
    if classes and len(classes) == 2:  # exercise 7: the store and the clerk, hosted by isolation.kvhost
        from ..isolation.kvhost import HostedKV
        return HostedKV(*classes), info
    return (classes[0] if classes else None), info
