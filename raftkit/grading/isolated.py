"""Grading with every node in a process of its own (the trust boundary).

The loader that serves runs no longer executes the notebook: a *template*
process does (``raftkit.isolation``), and each run's clusters fork their
node processes from it. The loader and its runs execute only the kit's own
code (the battery, the ``Cluster`` harness, the safety monitor, the result),
so nothing the student writes can reach the checks or the verdict.
"""

from __future__ import annotations

import os

from ..errors import NodeError
from ..isolation.kvprocess import hosted_kv
from ..isolation.process import LoadEnded, LoadRefused, LoadTimeout, hosted_class, template_for
from ..isolation.sandbox import Sandbox, bwrap_problem
from ..isolation.uidsandbox import UidSandbox, copy_folder, exposed, publish, sandbox_root, stdlib_problem, uid_problem
from .kitview import build_student_kit, same_as_reference

__all__ = ["load_isolated", "class_spec_of", "choose_sandbox", "readable_secrets", "SANDBOXES"]

SANDBOXES = ("auto", "bwrap", "uid", "none")
WEAKER = ("graded in a weaker sandbox (a user of its own, no namespaces: bubblewrap cannot run here): the student's "
          "code could see other processes and use the network")


def choose_sandbox(mode: str = "auto") -> tuple[str, str | None]:
    """The sandbox ``mode`` means here: ``("bwrap" | "uid" | "none", None)``,
    or ``(mode, why it cannot run)``. ``auto``: bubblewrap if it works, else
    a user of its own if the grader is root, else none is possible."""
    if mode not in SANDBOXES:
        raise ValueError(f"unknown sandbox {mode!r} (one of {', '.join(SANDBOXES)})")
    if mode == "none":
        return mode, None
    bwrap = bwrap_problem() if mode in ("auto", "bwrap") else None
    if mode == "bwrap" or (mode == "auto" and bwrap is None):
        return "bwrap", bwrap
    uid = uid_problem()
    if mode == "uid":
        return mode, uid
    return ("uid", None) if uid is None else ("auto", f"{bwrap}; and {uid}")


def kit_source() -> str:
    """The folder holding the ``raftkit`` package (a clone's root)."""
    import raftkit
    return os.path.dirname(os.path.dirname(os.path.abspath(raftkit.__file__)))


def readable_secrets(classmates=()) -> dict[str, list[str]]:
    """What a user of its own could read that no student may: the files of
    ``solutions/`` next to the kit and below the folders ``classmates``
    (the notebooks of a class), by the folder given."""
    roots = [p for p in [os.path.join(kit_source(), "solutions")] if os.path.isdir(p)]
    roots += [os.path.abspath(p) for p in classmates]
    readable = {p: exposed([p]) for p in roots}
    return {p: files for p, files in readable.items() if files}


def class_spec_of(cells, ex, options, folder) -> tuple:
    """How a template gets the student's class: run these cells."""
    cells = tuple((int(n), str(src)) for n, src in cells)
    return ("load", "raftkit.grading.hostload", "run_cells", (cells, ex.number, folder, options.memory_mb))


def _sandbox(ex, options, folder, tmp):
    """(sandbox or None, the kit view, the folder the cells see, warnings)
    or a ``str``: why the student's code cannot be sandboxed."""
    mode, problem = choose_sandbox(options.sandbox)
    if problem is not None:
        return f"not graded: no sandbox for the student's code ({problem}); the instructor may pass --sandbox none"
    limits = {"memory_mb": options.memory_mb, "cpu_seconds": int(options.notebook_timeout) + 60}
    if mode == "bwrap":
        kit = build_student_kit(ex, tmp)
        return Sandbox(kit=kit, folder=folder, **limits), kit, folder, []
    if mode == "uid":
        try:
            root, uid = sandbox_root()
        except OSError as e:
            return f"not graded: the sandbox for the student's code could not be made ({e})"
        kit = build_student_kit(ex, root)
        publish(os.path.dirname(kit))
        folder = copy_folder(folder, root)
        warnings = [WEAKER] + [w for w in [stdlib_problem()] if w] + [
            f"readable by the student's code (other users may read it): {files[0]}"
            + (f" and {len(files) - 1} more file(s) in {root}" if len(files) > 1 else "")
            for root, files in readable_secrets().items()]
        return UidSandbox(root=root, uid=uid, kit=kit, folder=folder, **limits), kit, folder, warnings
    return None, build_student_kit(ex, tmp), folder, [
        "graded WITHOUT a sandbox (--sandbox none): not a grade for record"]


def load_isolated(cells, ex, options, folder, tmp):
    """Start the template that runs the cells. Returns (loaded, impl,
    template): ``loaded`` is the report's ``{"ok", "error", "warnings"}``,
    ``impl`` the stand-in class scenarios receive."""
    chosen = _sandbox(ex, options, folder, tmp)
    if isinstance(chosen, str):
        return {"ok": False, "error": chosen, "warnings": []}, None, None
    sandbox, kit, folder, notes = chosen
    spec = class_spec_of(cells, ex, options, folder)
    try:
        template = template_for(spec, sandbox, load_timeout=options.load_timeout, kit=None if sandbox else kit)
    except LoadRefused as e:
        return dict(e.info, ok=False, error=e.info.get("error") or str(e)), None, None
    except LoadEnded as e:
        where = f" (it was running cell {e.cell})" if e.cell else ""
        return {"ok": False, "error": f"the notebook's process ended ({e.ended}) before its cells finished{where}: "
                                      "graded cells should only define code", "warnings": []}, None, None
    except LoadTimeout as e:
        where = f" (it was running cell {e.cell})" if e.cell else ""
        return {"ok": False, "error": f"the notebook's cells did not finish within {options.load_timeout:.0f} s"
                                      f"{where}: graded cells should only define code (tag experiments raftkit-skip)",
                "warnings": []}, None, None
    except NodeError as e:
        return {"ok": False, "error": str(e), "warnings": []}, None, None
    loaded = {"ok": True, "error": None, "warnings": notes + template.info.get("warnings", [])}
    for cls in ex.classes:
        copied = same_as_reference(cells, cls)
        if copied:
            loaded["warnings"].append(f"for the instructor: {cls.name}.{', .'.join(copied)} "
                                      "is the kit's own code (names and formatting aside)")
    kit = None if sandbox else kit
    if len(ex.classes) == 2:  # exercise 7: the store and the clerk (isolation/kvprocess.py)
        names = tuple(cls.name for cls in ex.classes)
        return loaded, ex.make_impl(*hosted_kv(spec, sandbox, kit, names, predict=True)), template
    return loaded, hosted_class(spec, ex.classes[0].name, sandbox, kit, predict=True,
                                written=ex.classes[0].methods), template
