"""Grading with every node in a process of its own (the trust boundary).

The loader that serves runs no longer executes the notebook: a *template*
process does (``raftkit.isolation``), and each run's clusters fork their
node processes from it. The loader and its runs execute only the kit's own
code (the battery, the ``Cluster`` harness, the safety monitor, the result),
so nothing the student writes can reach the checks or the verdict.
"""

from __future__ import annotations

from ..errors import NodeError
from ..isolation.kvprocess import hosted_kv
from ..isolation.process import LoadEnded, LoadRefused, LoadTimeout, hosted_class, template_for
from ..isolation.sandbox import Sandbox, bwrap_problem
from .kitview import build_student_kit, same_as_reference

__all__ = ["load_isolated", "class_spec_of"]


def class_spec_of(cells, ex, options, folder) -> tuple:
    """How a template gets the student's class: run these cells."""
    cells = tuple((int(n), str(src)) for n, src in cells)
    return ("load", "raftkit.grading.hostload", "run_cells", (cells, ex.number, folder, options.memory_mb))


def load_isolated(cells, ex, options, folder, tmp):
    """Start the template that runs the cells. Returns (loaded, impl,
    template): ``loaded`` is the report's ``{"ok", "error", "warnings"}``,
    ``impl`` the stand-in class scenarios receive."""
    spec = class_spec_of(cells, ex, options, folder)
    sandbox, kit = None, build_student_kit(ex, tmp)
    if not options.unsandboxed:
        problem = bwrap_problem()
        if problem is not None:
            return {"ok": False, "error": f"not graded: no sandbox for the student's code ({problem}); "
                                          "the instructor may pass --unsafe-no-sandbox", "warnings": []}, None, None
        sandbox = Sandbox(kit=kit, folder=folder, memory_mb=options.memory_mb,
                          cpu_seconds=int(options.notebook_timeout) + 60)
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
    loaded = {"ok": True, "error": None, "warnings": template.info.get("warnings", [])}
    if sandbox is None:
        loaded["warnings"] = ["graded WITHOUT a sandbox (--unsafe-no-sandbox): not a grade for record"] + \
            loaded["warnings"]
    for cls in ex.classes:
        copied = same_as_reference(cells, cls)
        if copied:
            loaded["warnings"].append(f"for the instructor: {cls.name}.{', .'.join(copied)} "
                                      "is the kit's own code (names and formatting aside)")
    kit = None if sandbox else kit
    if len(ex.classes) == 2:  # exercise 7: the store and the clerk (isolation/kvprocess.py)
        names = tuple(cls.name for cls in ex.classes)
        return loaded, ex.make_impl(*hosted_kv(spec, sandbox, kit, names)), template
    return loaded, hosted_class(spec, ex.classes[0].name, sandbox, kit), template
