"""Student versions of the solution notebooks (the nbgrader convention).

In every code cell, the lines from ``### BEGIN SOLUTION`` to
``### END SOLUTION`` (markers included) become one line,
``raise NotImplementedError``, indented like the ``BEGIN`` marker; in
markdown cells they become ``YOUR ANSWER HERE``. Outputs and execution
counts are cleared and volatile metadata dropped, so releasing the same
solutions always writes the same bytes.
"""

from __future__ import annotations

import glob
import os
import re

__all__ = ["release", "release_notebook", "strip_solutions", "ReleaseError"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB, MARKDOWN_STUB = "raise NotImplementedError", "YOUR ANSWER HERE"
VOLATILE_CELL_KEYS = ("execution", "collapsed", "scrolled", "ExecuteTime")


class ReleaseError(ValueError):
    """A solution notebook's markers are broken (the message says where)."""


def strip_solutions(source: str, stub: str = CODE_STUB, where: str = "cell") -> str:
    """Replace each solution region of ``source`` by ``stub``."""
    out, inside = [], None
    for number, line in enumerate(source.split("\n"), 1):
        text = line.strip()
        if text == BEGIN:
            if inside is not None:
                raise ReleaseError(f"{where}, line {number}: {BEGIN} inside a solution begun at line {inside}")
            inside = number
            indent = re.match(r"[ \t]*", line).group(0)
            out.append(indent + stub)
        elif text == END:
            if inside is None:
                raise ReleaseError(f"{where}, line {number}: {END} without a {BEGIN}")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise ReleaseError(f"{where}, line {inside}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def release_notebook(nb, name: str = "notebook"):
    """The student version of a solution notebook (a new nbformat node)."""
    import copy
    nb = copy.deepcopy(nb)
    for number, cell in enumerate(nb.cells, 1):
        where = f"{name}, cell {number}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, CODE_STUB, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = strip_solutions(cell.source, MARKDOWN_STUB, where)
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    return nb


def release(src: str, dst: str) -> list[str]:
    """Write the student version of every notebook in ``src`` to ``dst``
    (same file names). Returns the paths written."""
    import nbformat
    paths = sorted(glob.glob(os.path.join(src, "*.ipynb")))
    if not os.path.isdir(src):
        raise ReleaseError(f"{src}: no such folder")
    if not paths:
        raise ReleaseError(f"{src}: no notebooks (*.ipynb) to release")
    os.makedirs(dst, exist_ok=True)
    written = []
    for path in paths:
        name = os.path.basename(path)
        nb = nbformat.read(path, as_version=4)
        out = release_notebook(nb, name)
        target = os.path.join(dst, name)
        text = nbformat.writes(out)
        if not text.endswith("\n"):
            text += "\n"
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        written.append(target)
    return written
