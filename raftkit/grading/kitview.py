"""The student's view of the kit while exercise N is graded: a copy of the
``raftkit`` package in which the kit's own versions of the methods that
exercise asks for are stubs, so that ``return ConsensusModule.request_vote(
self, args)`` (or ``super().request_vote(args)``) cannot stand in for the
student's code. The methods come from the exercise's ``ClassSpec``. The
sandbox mounts this copy, read-only, where node processes import the kit.

``same_as_reference`` flags, for the instructor, a student method that is
the kit's own after normalisation (names of locals, formatting, comments and
docstrings ignored).
"""

from __future__ import annotations

import ast
import compileall
import contextlib
import inspect
import os
import shutil
import sys
import textwrap

__all__ = ["build_student_kit", "compile_kit", "stub_methods", "same_as_reference", "normalized"]


def stub_methods(source: str, class_name: str, methods, exercise: int) -> str:
    """``source`` with the bodies of ``class_name``'s ``methods`` replaced by
    a ``raise`` (docstrings kept)."""
    tree = ast.parse(source)
    lines = source.splitlines(True)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        raise ValueError(f"no class {class_name} to stub")
    edits = []
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef) and fn.name in methods:
            body = fn.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:]  # keep the docstring
            if not body:
                continue
            indent = " " * body[0].col_offset
            text = (f"{indent}raise NotImplementedError(\"the kit's own {class_name}.{fn.name} is not available "
                    f"while exercise {exercise} is graded: write it yourself\")\n")
            edits.append((body[0].lineno - 1, fn.end_lineno, text))
    for start, end, text in sorted(edits, reverse=True):
        lines[start:end] = [text]
    return "".join(lines)


def _kit_package() -> str:
    import raftkit
    return os.path.dirname(os.path.abspath(raftkit.__file__))


def compile_kit(package: str | None = None) -> None:
    """Byte-compile the kit's modules where that is not done yet (a
    checkout's first grading; a read-only install is left as it is). The
    grading processes write no bytecode themselves (nothing lands next to a
    submission), so without this each of them compiles every module it imports."""
    with contextlib.suppress(OSError):
        compileall.compile_dir(package or _kit_package(), quiet=2)


def _other_bytecode(folder, names):
    """What the kit's copy leaves out: another interpreter's bytecode."""
    tag = f".{sys.implementation.cache_tag}."
    return [n for n in names if n.endswith(".pyc") and tag not in n]


def build_student_kit(ex, where: str) -> str:
    """Write the student's view of the kit for exercise ``ex`` under
    ``where``; returns the path of its ``raftkit`` package folder."""
    target = os.path.join(where, f"kit-exercise-{ex.number}", "raftkit")
    if os.path.isdir(target):
        return target
    # with its bytecode: the copies keep their sources' times, so it stays valid for all but the stubbed modules
    shutil.copytree(_kit_package(), target, ignore=_other_bytecode)
    for spec in ex.classes:
        base = spec.base
        if not base.__module__.startswith("raftkit."):
            continue
        path = os.path.join(target, *base.__module__.split(".")[1:]) + ".py"
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(stub_methods(text, base.__name__, spec.methods, ex.number))
    compile_kit(target)  # the stubbed modules: node processes only read bytecode
    return target


class _Names(ast.NodeTransformer):
    """Locals and arguments renamed in order of appearance; docstrings gone."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def _rename(self, name):
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_arg(self, node):
        node.arg = self._rename(node.arg)
        return node

    def visit_Name(self, node):
        node.id = self._rename(node.id)
        return node

    def visit_FunctionDef(self, node):
        node.name = "f"
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None),
                                                                          ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node


def normalized(source: str) -> str | None:
    """A method's source with formatting, comments, docstrings and names
    of locals erased (None if it does not parse)."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    return ast.dump(_Names().visit(tree), annotate_fields=False)


def same_as_reference(cells, spec) -> list[str]:
    """Names of ``spec.methods`` that the notebook's class ``spec.name``
    defines as the kit's own code. Read from the cells' text (parsed, never
    run), so the grading process can tell without executing them."""
    same = []
    for _, source in cells:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue  # magics, or not Python: nothing to compare
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == spec.name):
            for fn in cls.body:
                if not (isinstance(fn, ast.FunctionDef) and fn.name in spec.methods):
                    continue
                theirs = getattr(spec.base, fn.name, None)
                try:
                    reference = normalized(inspect.getsource(theirs))
                except (OSError, TypeError):
                    continue
                mine = normalized(ast.get_source_segment(source, fn) or "")
                if mine is not None and mine == reference and fn.name not in same:
                    same.append(fn.name)
    return same
