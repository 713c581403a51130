"""Executing a notebook's cells (in an IPython shell when there is one,
file names ``<cell N>``) and checking the exercise's classes they define:
names, bases, methods and signatures."""

from __future__ import annotations

import inspect
import linecache

from .report import describe_error

__all__ = ["make_shell", "load_cells", "check_classes", "check_method"]


def make_shell():
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
    except ImportError:
        return None
    cfg = Config()
    cfg.HistoryManager.enabled = False
    try:
        return InteractiveShell.instance(config=cfg)
    except Exception:
        return None


def load_cells(cells, ex, progress=None) -> dict:
    """Execute the cells and find the exercise's classes. Returns
    ``{"ok", "error", "warnings", "classes"}``; never raises."""
    shell = make_shell()
    ns = shell.user_ns if shell is not None else {"__name__": "__main__", "__builtins__": __builtins__}
    warnings = []
    for number, source in cells:
        if progress:
            progress(number)
        filename = f"<cell {number}>"
        try:
            code_text = shell.transform_cell(source) if shell is not None else source
        except Exception:
            code_text = source
        linecache.cache[filename] = (len(code_text), None, code_text.splitlines(True), filename)
        try:
            exec(compile(code_text, filename, "exec"), ns)
        except BaseException as e:  # SystemExit and KeyboardInterrupt too: the next cells still run
            if isinstance(e, SyntaxError) and e.filename == filename:
                warnings.append(f"cell {number} has a syntax error at line {e.lineno}: {e.msg}")
            else:
                tb = describe_error(e)
                where = f" ({tb['where'].splitlines()[0].strip()})" if tb.get("where") else ""
                warnings.append(f"cell {number} raised {type(e).__name__}: {str(e)[:200]}{where}")
    problems, classes = check_classes(ex, ns)
    if problems:
        hint = ("\n" + "\n".join(warnings)) if warnings else ""
        return {"ok": False, "error": "\n".join(problems) + hint, "warnings": warnings}
    return {"ok": True, "error": None, "warnings": warnings, "classes": classes}


def check_classes(ex, ns) -> tuple[list[str], list]:
    """Problems with the student's classes (messages), and the classes."""
    problems, classes = [], []
    for spec in ex.classes:
        base = spec.base
        where = f"raftkit.{base.__name__}" if base.__module__.startswith("raftkit") else base.__name__
        want = f"`class {spec.name}({base.__name__}):` defining {', '.join(spec.methods)}"
        obj = ns.get(spec.name)
        if obj is None:
            problems.append(f"missing class: the notebook defines no {spec.name}; exercise {ex.number} expects "
                            f"{want} (keep the name {spec.name})")
            continue
        if not isinstance(obj, type) or not issubclass(obj, base):
            problems.append(f"{spec.name} must be a class that extends {where} ({want}), "
                            f"got {type(obj).__name__} {obj!r:.80}")
            continue
        for name in spec.methods:
            problem = check_method(obj, spec, name)
            if problem:
                problems.append(problem)
        classes.append(obj)
    return problems, classes


def check_method(cls, spec, name) -> str | None:
    owner = next((k for k in cls.__mro__ if name in vars(k)), None)
    if owner is None or owner.__module__.startswith("raftkit") or owner is spec.base:
        return (f"{spec.name} does not define {name}(): write it in your class (inheriting raftkit's own "
                f"would not be your work, and is not graded)")
    fn = vars(owner)[name]
    reference = getattr(spec.base, name)
    if not inspect.isfunction(fn):
        return f"{spec.name}.{name} must be a plain method (def {name}(self, ...)), got {type(fn).__name__}"
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
        return (f"{spec.name}.{name} must be a plain method: it contains `yield` or is `async`, so calling it "
                "would not run its body")
    want, got = inspect.signature(reference), inspect.signature(fn)
    params = [p for p in list(want.parameters.values())[1:] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    least = sum(1 for p in params if p.default is p.empty)
    for count in {least, len(params)}:
        try:
            got.bind(None, *range(count))
        except TypeError:
            return (f"wrong signature: {spec.name}.{name}{got} must accept the same arguments as "
                    f"raftkit's {name}{want}: it is called as {name}({', '.join(p.name for p in params[:count])})")
    return None
