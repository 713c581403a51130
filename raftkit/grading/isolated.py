"""Grading with every node in a process of its own (the trust boundary).

The loader that serves runs no longer executes the notebook: a *template*
process does (``raftkit.isolation``), and each run's clusters fork their
node processes from it. The loader and its runs execute only the kit's own
code (the battery, the ``Cluster`` harness, the safety monitor, the result),
so nothing the student writes can reach the checks or the verdict.
"""

from __future__ import annotations

from ..errors import NodeError
from ..isolation.process import LoadRefused, hosted_class, template_for

__all__ = ["load_isolated", "class_spec_of"]


def class_spec_of(cells, ex, options, folder) -> tuple:
    """How a template gets the student's class: run these cells."""
    return ("cells", tuple((int(n), str(src)) for n, src in cells), ex.number, folder, options.memory_mb)


def load_isolated(cells, ex, options, folder):
    """Start the template that runs the cells. Returns (loaded, impl,
    template): ``loaded`` is the report's ``{"ok", "error", "warnings"}``,
    ``impl`` the stand-in class scenarios receive."""
    spec = class_spec_of(cells, ex, options, folder)
    try:
        template = template_for(spec, None, load_timeout=options.load_timeout)
    except LoadRefused as e:
        return dict(e.info, ok=False, error=e.info.get("error") or str(e)), None, None
    except NodeError as e:
        if "TimeoutError" in str(e):
            return {"ok": False, "error": f"the notebook's cells did not finish within {options.load_timeout:.0f} s: "
                                          "graded cells should only define code (tag experiments raftkit-skip)",
                    "warnings": []}, None, None
        return {"ok": False, "error": str(e), "warnings": []}, None, None
    loaded = {"ok": True, "error": None, "warnings": template.info.get("warnings", [])}
    return loaded, hosted_class(spec, ex.classes[0].name), template
