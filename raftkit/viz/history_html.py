"""A checked history as one standalone HTML file (inline SVG, no scripts, no downloads).

One section per key, failing keys first: a timeline with one lane per client
and one bar per operation from call to return (timed-out operations dashed to
the right edge). Hovering a bar shows the operation, its client and times,
its place in the linearization (or in the longest linearizable prefix) and
the model state after it. For an illegal key the section lists that prefix
and the operations that could not be placed next, with the reason for each:
the same information as Porcupine's visualisation, as a static page.

>>> from raftkit.lincheck import Operation, check
>>> h = [Operation(0, "put", "x", "1", None, 0.0, 1.0), Operation(1, "get", "x", None, "", 2.0, 3.0)]
>>> page = history_html(h, check(h))
>>> "NOT linearizable" in page and "<svg" in page
True
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Hashable, Sequence

from ..lincheck import CheckResult, Operation
from ..seqmodel import KV_MODEL, Model

WIDTH, LANE, LEFT = 1100, 26, 90
COLOURS = {"ok": "#4c9be8", "prefix": "#5cb85c", "blocked": "#d62728", "unplaced": "#c8c8c8",
           "unknown": "#f0ad4e", None: "#9aa5b1"}

STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
h2{font-size:1.05em;margin:1.4em 0 .3em} .illegal{color:#b00} .unknown{color:#a60}
svg text{font-size:10px;font-family:sans-serif} li{font-family:monospace;font-size:.85em}
rect:hover{stroke:#000;stroke-width:2}"""


def _states(model: Model, order: Sequence[Operation]) -> dict[int, str]:
    """id(op) -> the model state after it, replaying ``order``."""
    state, after = model.init(), {}
    for op in order:
        _, state = model.step(state, op)
        after[id(op)] = model.describe_state(state)
    return after


def _roles(key: Hashable, result: CheckResult | None) -> tuple[dict[int, int], dict[int, str]]:
    """id(op) -> 1-based position, and id(op) -> role (for the colour)."""
    if result is None:
        return {}, {}
    failure = result.failure.get(key)
    order = failure.prefix if failure else result.linearization.get(key, [])
    number = {id(op): n for n, op in enumerate(order, start=1)}
    role = {id(op): "prefix" if failure else "ok" for op in order}
    if failure:
        role.update({id(op): "unplaced" for op in failure.unplaced})
        role.update({id(op): "blocked" for op, _ in failure.candidates})
    return number, role


def _svg(ops: list[Operation], key: Hashable, result: CheckResult | None, model: Model) -> str:
    clients = sorted({op.client_id for op in ops})
    lane = {c: i for i, c in enumerate(clients)}
    finite = [t for op in ops for t in (op.call, op.ret) if t is not None and math.isfinite(t)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = max(hi - lo, 1e-9)
    right = WIDTH - 10

    def x(t: float) -> float:
        return LEFT + (right - 20 - LEFT) * (t - lo) / span

    number, role = _roles(key, result)
    failure = result.failure.get(key) if result else None
    states = _states(model, failure.prefix if failure else result.linearization.get(key, []) if result else [])
    height = LANE * len(clients) + 24
    parts = [f'<svg width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for c, i in lane.items():
        parts.append(f'<text x="4" y="{i * LANE + 17}">client {html.escape(str(c))}</text>')
    for op in ops:
        x0, x1 = x(op.call), right if op.timed_out else x(op.end)
        n = number.get(id(op))
        tip = (f"{model.describe(op)}\nclient {op.client_id}, {op.call:g} .. "
               f"{'timed out' if op.timed_out else f'{op.ret:g}'}")
        if n:
            tip += f"\nposition {n}" + (f", state after: {states[id(op)]}" if id(op) in states else "")
        colour = COLOURS[role.get(id(op))]
        if role.get(id(op)) == "blocked":
            x1 = max(x1, x0 + 4)
        dash = ' stroke-dasharray="4 2" fill-opacity="0.4"' if op.timed_out else ""
        y = lane[op.client_id] * LANE + 4
        parts.append(f'<g><title>{html.escape(tip)}</title><rect x="{x0:.1f}" y="{y}" '
                     f'width="{max(x1 - x0, 1):.1f}" height="{LANE - 8}" fill="{colour}" '
                     f'stroke="#333" stroke-width="0.5"{dash}/>'
                     + (f'<text x="{x0 + 2:.1f}" y="{y + 12}">{n}</text>' if n and len(ops) <= 300 else "")
                     + "</g>")
    if failure and failure.unplaced:    # by this return the next operation had to be placed
        stuck = x(min(min(op.end for op in failure.unplaced), hi))
        parts.append(f'<line x1="{stuck:.1f}" x2="{stuck:.1f}" y1="0" y2="{height - 16}" stroke="#d62728" '
                     'stroke-dasharray="3 3"><title>the first return among the operations not placed: '
                     'the search could not get past here</title></line>')
    parts.append(f'<text x="{LEFT}" y="{height - 4}">{lo:g}</text>'
                 f'<text x="{right - 60}" y="{height - 4}">{hi:g}</text></svg>')
    return "".join(parts)


def _section(key: Hashable, ops: list[Operation], result: CheckResult | None, model: Model) -> str:
    status = result.per_key.get(key, "unknown") if result else "not checked"
    head = {"ok": "linearizable", "illegal": "NOT linearizable"}.get(status, status)
    out = [f'<h2 class="{status}">key {html.escape(repr(key))}: {head} ({len(ops)} operations)</h2>']
    if result and key in result.reasons:
        out.append(f"<p>{html.escape(result.reasons[key])}</p>")
    out.append(_svg(ops, key, result, model))
    failure = result.failure.get(key) if result else None
    if failure:
        prefix = ", ".join(model.describe(op) for op in failure.prefix) or "(none)"
        out.append(f"<p>Longest linearizable prefix ({len(failure.prefix)} operations, green, numbered): "
                   f"<code>{html.escape(prefix)}</code><br>state after it: "
                   f"<code>{html.escape(model.describe_state(failure.state))}</code>. "
                   f"{len(failure.unplaced)} operation(s) could not be placed (grey); "
                   "the next one had to be one of these (red):</p><ul>")
        out += [f"<li>{html.escape(model.describe(op))} [client {op.client_id}, {op.call:g}..{op.end:g}]: "
                f"{html.escape(why)}</li>" for op, why in failure.candidates]
        out.append("</ul>")
    return "".join(out)


def history_html(history: Sequence[Operation], result: CheckResult | None = None, *,
                 model: Model = KV_MODEL, title: str = "linearizability check") -> str:
    """The page as a string (see the module docstring)."""
    parts = model.partition(list(history))
    rank = {"illegal": 0, "unknown": 1, "ok": 2}
    keys = sorted(parts, key=lambda k: (rank.get(result.per_key.get(k), 1) if result else 0, str(k)))
    verdict = html.escape(str(result).splitlines()[0]) if result else "not checked"
    body = "".join(_section(k, parts[k], result, model) for k in keys)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{verdict}. "
            "Hover a bar for the operation, its times, its position and the state after it.</p>"
            f"{body}</body></html>\n")


def write_html(history: Sequence[Operation], result: CheckResult | None, path: str | os.PathLike, *,
               model: Model = KV_MODEL) -> None:
    """Write :func:`history_html` to ``path``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(history_html(history, result, model=model, title=f"linearizability check: {os.path.basename(path)}"))
