"""Draw a key/value history as bars on a timeline, optionally with a check result.

>>> from raftkit.lincheck import Operation, check
>>> h = [Operation(0, "put", "x", "1", None, 0.0, 1.0),
...      Operation(1, "get", "x", None, "1", 0.5, 2.0)]
>>> fig = draw_history(h, check(h))
>>> len(fig.axes)
1

Uses matplotlib's object API only (no pyplot): safe from threads and headless.
In Jupyter, a returned ``Figure`` displays itself.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from ..lincheck import CheckResult, Operation, describe
from ..seqmodel import Model
from .figure import Figure

RED = "#d62728"
LIGHT_RED = "#f4a3a3"
DARK_RED = "#8b0000"
NOT_RED = (0, 1, 2, 4, 5, 6, 7, 8, 9)  # tab10 colours for clients
AUTO_LABEL_LIMIT = 150  # above this many operations, bar labels are off unless asked for

Lane = tuple[Hashable, int]  # (key, client id or sub-row number)


def _lanes(history: Sequence[Operation], by: str) -> dict[int, Lane]:
    """Map id(op) -> lane. ``by="client"``: one lane per key and client;
    ``by="key"``: per key, overlapping ops are packed into as few rows as possible."""
    lane: dict[int, Lane] = {}
    if by == "client":
        for op in history:
            lane[id(op)] = (op.key, op.client_id)
        return lane
    row_end: dict[Hashable, list[float]] = {}
    for op in sorted(history, key=lambda o: o.call):
        ends = row_end.setdefault(op.key, [])
        row = next((r for r, end in enumerate(ends) if end < op.call), len(ends))
        if row == len(ends):
            ends.append(op.end)
        ends[row] = op.end
        lane[id(op)] = (op.key, row)
    return lane


def _order_numbers(result: CheckResult | None) -> dict[int, int]:
    """id(op) -> 1-based position in its key's linearization (or failing prefix)."""
    numbers: dict[int, int] = {}
    if result is None:
        return numbers
    orders = list(result.linearization.values()) + [f.prefix for f in result.failure.values()]
    for order in orders:
        for n, op in enumerate(order, start=1):
            numbers[id(op)] = n
    return numbers


def _title(result: CheckResult | None, n_ops: int) -> str:
    if result is None:
        return f"history: {n_ops} operations"
    if result.status == "ok":
        return f"linearizable: {n_ops} operations (numbers = linearization order)"
    if result.status == "illegal":
        bad = ", ".join(repr(k) for k, s in result.per_key.items() if s == "illegal")
        return f"NOT linearizable: key {bad} fails (numbers = longest linearizable prefix; red = not placed)"
    undecided = ", ".join(repr(k) for k, s in result.per_key.items() if s == "unknown")
    return f"unknown (time budget ran out) for key {undecided}"


def _style(op: Operation, color, illegal: bool, blocking: bool) -> dict:
    """Bar style: client colour; red for illegal keys (solid red = could not be
    placed next); timed-out operations faded, dashed and thin, behind the rest."""
    face = RED if blocking else LIGHT_RED if illegal else color
    return dict(color=face, edgecolor=DARK_RED if blocking else RED if illegal else "black",
                linewidth=2.0 if blocking else 0.6, alpha=0.35 if op.timed_out else 0.85,
                linestyle="--" if op.timed_out else "-", height=0.2 if op.timed_out else 0.5,
                zorder=1 if op.timed_out else 2)


def _draw_op(ax: Axes, op: Operation, y: float, right: float, style: dict,
             label: str | None, above: bool) -> None:
    """One operation: a bar from call to return (to the right edge if it timed out),
    its label above or below it (alternating within a lane, to limit overlaps)."""
    end = right if op.timed_out else op.end
    ax.barh(y, max(end - op.call, 1e-9), left=op.call, **style)
    if label:
        ax.text(op.call, y - 0.27 if above else y + 0.27, label, fontsize=7, clip_on=True,
                va="bottom" if above else "top", ha="left", zorder=3,
                color=DARK_RED if style["edgecolor"] != "black" else "black")


def draw_history(history: Sequence[Operation], result: CheckResult | None = None, *,
                 lanes: str = "client", labels: bool | None = None,
                 width: float = 11.0, model: Model | None = None) -> Figure:
    """Timeline of ``history``: one lane per (key, client), one bar per operation.

    Bars run from call to return, coloured by client; timed-out operations run
    dashed and faded to the right edge. With a :class:`CheckResult`, ok keys are
    numbered in linearization order; illegal keys are shaded red, their longest
    linearizable prefix numbered, the operations not placed drawn in red (those
    that could not be placed next outlined thickly), and the title names the
    failing key.
    ``lanes="key"`` packs each key's operations into as few rows as possible.
    ``labels`` defaults to on for up to 150 operations; ``model`` labels the
    operations its way (default: by kind, see :func:`raftkit.seqmodel.describe`).
    A dashed red line marks, for each illegal key, the first return among the
    operations not placed: the search could not get past it.
    """
    ops = list(history)
    lane_of = _lanes(ops, "key" if lanes == "key" else "client")
    rows = sorted(set(lane_of.values()), key=lambda kl: (str(kl[0]), kl[1]))
    row_y = {lane: i for i, lane in enumerate(rows)}
    numbers = _order_numbers(result)
    illegal_keys = {k for k, s in (result.per_key.items() if result else ()) if s == "illegal"}
    blocking = {id(op) for f in (result.failure.values() if result else ()) for op, _ in f.candidates}
    show_labels = len(ops) <= AUTO_LABEL_LIMIT if labels is None else labels

    finite = [t for op in ops for t in (op.call, op.ret) if t is not None and math.isfinite(t)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    right = hi + 0.05 * max(hi - lo, 1e-9)

    fig = Figure(figsize=(width, 1.2 + 0.5 * max(len(rows), 1)), layout="constrained")
    ax = fig.add_subplot()
    tab10 = colormaps["tab10"]

    def cmap(client: int):               # tab10 without its red, kept for "not placed"
        return tab10(NOT_RED[client % len(NOT_RED)])
    drawn_in_lane: dict[Lane, int] = {}
    for op in sorted(ops, key=lambda o: o.call):
        lane = lane_of[id(op)]
        drawn_in_lane[lane] = drawn_in_lane.get(lane, 0) + 1
        label = None
        if show_labels:
            n = numbers.get(id(op))
            label = (f"{n}: " if n else "") + (model.describe(op) if model else describe(op))
        unplaced = op.key in illegal_keys and id(op) not in numbers
        style = _style(op, cmap(op.client_id), unplaced, id(op) in blocking)
        _draw_op(ax, op, row_y[lane], right, style, label, above=drawn_in_lane[lane] % 2 == 1)

    for f in (result.failure.values() if result else ()):   # where each failing search got stuck
        ends = [op.end for op in f.unplaced if math.isfinite(op.end)]
        if ends:
            ax.axvline(min(ends), color=RED, linestyle="--", linewidth=0.8, zorder=0)
    for i, (key, _) in enumerate(rows):       # shade failing keys, separate key groups
        if key in illegal_keys:
            ax.axhspan(i - 0.5, i + 0.5, color=RED, alpha=0.07, linewidth=0)
        if i and rows[i - 1][0] != key:
            ax.axhline(i - 0.5, color="grey", linewidth=0.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{k} · {'c' if lanes != 'key' else 'row '}{c}" for k, c in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.45, -0.6)
    ax.set_xlim(lo - 0.02 * (right - lo), right)
    ax.set_xlabel("time")
    ax.set_title(_title(result, len(ops)), fontsize=10, color=RED if illegal_keys else "black")
    clients = sorted({op.client_id for op in ops})
    if clients and len(clients) <= len(NOT_RED):
        ax.legend(handles=[Patch(color=cmap(c), label=f"client {c}") for c in clients],
                  fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def draw_failure(history: Sequence[Operation], result: CheckResult, key: Hashable | None = None, *,
                 model: Model | None = None, width: float = 11.0) -> Figure:
    """The operations of one illegal key (default: the first), one lane per client:
    the longest linearizable prefix numbered, the operations that could not be
    placed next outlined in red, and below the plot the state after the prefix
    and why each of those operations fails there."""
    if not result.failure:
        raise ValueError(f"no illegal key to draw (status {result.status!r})")
    key = next(iter(result.failure)) if key is None else key
    if key not in result.failure:
        raise ValueError(f"key {key!r} is not illegal; illegal: {', '.join(map(repr, result.failure))}")
    f = result.failure[key]
    ops = [op for op in history if op.key == key]
    fig = draw_history(ops, result, width=width, model=model)
    show = model.describe if model else describe
    state = model.describe_state(f.state) if model else repr(f.state)
    lines = [f"after the {len(f.prefix)}-operation prefix the state is {state}; the next operation "
             f"had to be one of:"] + [f"  {show(op)} [client {op.client_id}]: {why}" for op, why in f.candidates[:6]]
    if len(f.candidates) > 6:
        lines.append(f"  ... and {len(f.candidates) - 6} more")
    fig.set_figheight(fig.get_figheight() + 0.16 * len(lines) + 0.2)
    ax = fig.axes[0]                    # text on the axes, below it: the layout makes room
    ax.text(0.0, -0.12 - 0.3 / fig.get_figheight(), "\n".join(lines), transform=ax.transAxes,
            fontsize=8, va="top", ha="left", color=DARK_RED, family="monospace")
    return fig
