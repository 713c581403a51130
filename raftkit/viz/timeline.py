"""Space-time (Lamport) diagrams of a trace, and animations of a run.

``timeline(trace)`` draws one horizontal line per node, time running right,
and every message as an arrow from the sender's line at send time to the
receiver's line at delivery time (replies: from the handler's delivery back to
the caller when the reply arrives), coloured by RPC. Lost messages are dashed
and end in a red ``x``; duplicated deliveries are dotted. Markers show what
happened on a node: a star when it became leader, an orange dot for candidate,
a blue triangle for stepping down / adopting a newer term, a hollow circle for
an election timeout, a cross for a crash, a green plus for a restart, and so
on (see the legend). Partitions, heals and network changes are vertical lines
across all nodes. While a node is leader its line is a thick green band;
while crashed, dotted.

>>> import raftkit
>>> with raftkit.Cluster(3, seed=1) as c:
...     c.run_for(0.6)
...     fig = timeline(c.trace, start=0.1, end=0.4)
>>> fig.raftkit_window, fig.raftkit_arrows > 0
((0.1, 0.4), True)

``export_animation(cluster, "run.gif")`` records a run as a GIF (or an HTML
page with a JavaScript player, for ``.html``); ``collect_frames`` gives the
frames (``ClusterState`` pictures) it draws.

Uses matplotlib's object API only (no pyplot): safe from threads and headless.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from ..state import ClusterState
from ..trace import Event
from .draw import DPI, METHOD_COLORS, METHOD_LABELS, OTHER_METHOD, Frame, _rgb
from .figure import Figure

__all__ = ["timeline", "Arrow", "match_messages", "collect_frames", "export_animation",
           "KINDS", "DEFAULT_KINDS"]

KINDS = frozenset({"timeout", "state", "vote", "send", "deliver", "reply", "drop", "duplicate", "append",
                   "commit", "apply", "crash", "restart", "connect", "disconnect", "partition", "heal",
                   "network", "submit", "snapshot", "install"})
DEFAULT_KINDS = KINDS - {"apply"}   # one apply per node per entry: too many marks to read
GLOBAL_KINDS = {"partition": "#d62728", "heal": "#2ca02c", "network": "#7f7f7f"}

# kind (or state) -> (marker, size, face, edge, legend label)
MARKS = {
    "leader": ("*", 13, "#ffd92f", "black", "became leader"),
    "candidate": ("o", 7, "#fd8d3c", "#a63603", "became candidate"),
    "follower": ("v", 6, "#6baed6", "#08519c", "follower (new term / stepped down)"),
    "timeout": ("o", 9, "none", "#fd8d3c", "election timeout"),
    "vote": ("d", 6, "#41ab5d", "#005a32", "granted a vote"),
    "submit": ("D", 5, "none", "#525252", "client submit"),
    "append": ("s", 5, "#bdbdbd", "#525252", "appended entry"),
    "commit": ("|", 9, "#006d2c", "#006d2c", "commit index advanced"),
    "apply": ("_", 7, "#74c476", "#74c476", "applied"),
    "snapshot": ("s", 6, "none", "#7570b3", "took snapshot"),
    "install": ("s", 6, "#7570b3", "#7570b3", "installed snapshot"),
    "crash": ("X", 11, "#252525", "white", "crash"),
    "restart": ("P", 10, "#31a354", "white", "restart"),
    "disconnect": ("|", 14, "#d62728", "#d62728", "disconnected"),
    "connect": ("|", 14, "#31a354", "#31a354", "connected"),
    "drop": ("x", 7, "#d62728", "#d62728", "message lost"),
}

_CLASS_TO_METHOD = {"RequestVote": "request_vote", "AppendEntries": "append_entries",
                    "InstallSnapshot": "install_snapshot", "KV": "kv_request"}


def _method(summary: str) -> str | None:
    """RPC method from a request or reply summary ("AppendEntries term=..." ->
    "append_entries"); None if it cannot be told (e.g. a reply of ``None``)."""
    head = summary.split(" ", 1)[0]
    if head.endswith("Reply"):
        head = head[:-5]
    if head in _CLASS_TO_METHOD:
        return _CLASS_TO_METHOD[head]
    if not head or head == "None":
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", head).lower()


@dataclass(frozen=True)
class Arrow:
    """One message leg on the diagram, from (t0, src) to (t1, dst).
    ``leg``: "request" | "reply" | "lost-request" | "lost-reply" | "duplicate"."""

    leg: str
    method: str
    src: int
    dst: int
    t0: float
    t1: float
    success: bool | None = None


def match_messages(events: Iterable[Event]) -> list[Arrow]:
    """Pair up the trace's message events into arrows, in the order they end.

    A ``send`` (src -> dst) is matched by the first later ``deliver`` at dst
    from src with the same summary (FIFO per link and summary); a ``reply``
    event (recorded when the reply reaches the caller) by the earliest
    unanswered delivery on that link for the same RPC; a ``drop`` ("method:
    why") by the earliest pending send (request lost) or unanswered delivery
    (reply lost) of that method on that link. When a node crashes, its calls
    die with it: its requests not yet delivered and its calls not yet
    answered end there, lost. A ``duplicate`` event marks that
    the next delivery with its summary is the network's second copy: drawn from
    the original send time. Under heavy reordering the FIFO choice can pair a
    reply with the wrong twin of two identical requests; the picture is still
    right about who talked to whom and when.
    """
    sends: dict[tuple, deque] = defaultdict(deque)        # (src, dst) -> (t, method, summary)
    delivered: dict[tuple, deque] = defaultdict(deque)    # (caller, handler) -> (t, method)
    last_send: dict[tuple, float] = {}                    # (src, dst, summary) -> send time
    copies: dict[tuple, int] = defaultdict(int)           # (src, dst, summary) -> copies announced
    arrows: list[Arrow] = []

    def take(queue: deque, pred):
        for k, item in enumerate(queue):
            if pred(item):
                del queue[k]
                return item
        return None

    for e in events:
        kind = e.kind
        if kind == "send" and e.node is not None and e.peer is not None:
            sends[(e.node, e.peer)].append((e.time, _method(e.detail) or "?", e.detail))
        elif kind == "duplicate" and e.node is not None and e.peer is not None:
            copies[(e.peer, e.node, e.detail)] += 1
        elif kind == "deliver" and e.node is not None and e.peer is not None:
            src, dst = e.peer, e.node
            method = _method(e.detail) or "?"
            key = (src, dst, e.detail)
            if copies.get(key):
                copies[key] -= 1
                t0 = last_send.get(key)
                if t0 is not None:
                    arrows.append(Arrow("duplicate", method, src, dst, t0, e.time))
                continue
            item = take(sends[(src, dst)], lambda it: it[2] == e.detail)
            if item is not None:
                last_send[key] = item[0]
                arrows.append(Arrow("request", method, src, dst, item[0], e.time))
            delivered[(src, dst)].append((e.time, method))
        elif kind == "reply" and e.node is not None and e.peer is not None:
            caller, handler = e.peer, e.node
            method = _method(e.detail)
            item = take(delivered[(caller, handler)], lambda it: method is None or it[1] == method)
            if item is not None:
                m = re.search(r"(?:success|vote_granted)=(True|False)", e.detail)
                arrows.append(Arrow("reply", item[1], handler, caller, item[0], e.time,
                                    None if m is None else m.group(1) == "True"))
        elif kind == "crash" and e.node is not None:
            # the crashed node's calls die with it: unsent requests and unanswered calls are lost
            i = e.node
            for (src, dst), queue in list(sends.items()):
                if src == i:
                    arrows.extend(Arrow("lost-request", m, src, dst, t, e.time) for t, m, _ in queue)
                    queue.clear()
            for (caller, handler), queue in list(delivered.items()):
                if caller == i:
                    arrows.extend(Arrow("lost-reply", m, handler, caller, t, e.time) for t, m in queue)
                    queue.clear()
        elif kind == "drop" and e.node is not None and e.peer is not None:
            method, _, why = e.detail.partition(": ")
            src, dst = e.node, e.peer
            if why.startswith("reply"):
                item = take(delivered[(src, dst)], lambda it: it[1] == method)
                if item is not None:
                    arrows.append(Arrow("lost-reply", method, dst, src, item[0], e.time))
            else:
                item = take(sends[(src, dst)], lambda it: it[1] == method)
                if item is not None:
                    arrows.append(Arrow("lost-request", method, src, dst, item[0], e.time))
    return arrows


def _events_of(trace) -> list[Event]:
    if hasattr(trace, "trace") and not isinstance(trace, (list, tuple)):
        trace = trace.trace
    events = list(trace)
    for e in events[:1]:
        if not isinstance(e, Event):
            raise TypeError(f"timeline expects a list of raftkit.Event (cluster.trace), got {type(e).__name__}")
    return events


def _leader_spans(events: Sequence[Event], end: float) -> tuple[dict, dict]:
    """node -> [(t0, t1)] while leader, and while crashed."""
    lead, down = defaultdict(list), defaultdict(list)
    lead_since, down_since = {}, {}
    for e in events:
        if e.node is None:
            continue
        if e.kind == "state":
            if e.detail.startswith("leader"):
                lead_since.setdefault(e.node, e.time)
            elif e.node in lead_since:
                lead[e.node].append((lead_since.pop(e.node), e.time))
        elif e.kind == "crash":
            if e.node in lead_since:
                lead[e.node].append((lead_since.pop(e.node), e.time))
            down_since.setdefault(e.node, e.time)
        elif e.kind == "restart" and e.node in down_since:
            down[e.node].append((down_since.pop(e.node), e.time))
    for i, t in lead_since.items():
        lead[i].append((t, end))
    for i, t in down_since.items():
        down[i].append((t, end))
    return lead, down


def _mark_of(e: Event) -> str | None:
    if e.kind == "state":
        for name in ("leader", "candidate", "follower"):
            if e.detail.startswith(name):
                return name
        return None
    return e.kind if e.kind in MARKS else None


def timeline(trace, *, start: float | None = None, end: float | None = None,
             nodes: Sequence[int] | None = None, kinds: Iterable[str] | None = None,
             width: float = 11.0) -> Figure:
    """A space-time diagram of ``trace`` (a list of events, or a Cluster).

    ``start``/``end``: the time window (default: the whole trace); messages
    that overlap the window are drawn (clipped at its edges), point events only
    inside it. ``nodes``: which node rows to show, top to bottom (default: all;
    messages to hidden nodes are left out). ``kinds``: which event kinds to
    show (default: all but ``apply``): message arrows need ``send`` or
    ``deliver``, reply arrows ``reply``, lost ones ``drop``, duplicates
    ``duplicate``.

    The figure carries what it drew, for checks: ``fig.raftkit_arrows`` (how
    many arrows), ``fig.raftkit_messages`` (the :class:`Arrow` list),
    ``fig.raftkit_marks`` (the events drawn as markers or lines) and
    ``fig.raftkit_window`` ``(start, end)``.

    >>> import raftkit
    >>> with raftkit.Cluster(3, seed=2) as c:
    ...     c.run_for(1.0)
    ...     c.crash(0)
    ...     c.run_for(0.5)
    ...     fig = timeline(c, kinds={"state", "crash", "send", "reply"}, nodes=[1, 2])
    >>> all(a.src in (1, 2) and a.dst in (1, 2) for a in fig.raftkit_messages)
    True
    """
    events = _events_of(trace)
    kinds = DEFAULT_KINDS if kinds is None else frozenset([kinds] if isinstance(kinds, str) else kinds)
    unknown = kinds - KINDS
    if unknown:
        raise ValueError(f"unknown event kind(s) {sorted(unknown)}; expected some of {sorted(KINDS)}")
    t_first = events[0].time if events else 0.0
    t_last = events[-1].time if events else 1.0
    lo = t_first if start is None else float(start)
    hi = max(t_last + 0.02 * (t_last - lo), lo + 1e-3) if end is None else float(end)
    if not hi > lo:
        raise ValueError(f"the time window must have start < end, got start={start!r} end={end!r}")

    ids = sorted({i for e in events for i in (e.node, e.peer) if isinstance(i, int)})
    servers = {e.node for e in events if e.kind not in ("send", "drop") and isinstance(e.node, int)} | \
              {e.peer for e in events if e.kind == "send" and isinstance(e.peer, int)}
    if nodes is None:
        rows = ids
    else:
        rows = list(nodes)
        for i in rows:
            if not isinstance(i, int) or isinstance(i, bool):
                raise TypeError(f"nodes must be a list of node ids, got {nodes!r}")
    row_of = {i: k for k, i in enumerate(rows)}
    n_servers = max(servers) + 1 if servers else 0

    def label(i):
        return f"S{i}" if i in servers or i < n_servers else f"C{i - n_servers}"

    fig = Figure(figsize=(width, 1.3 + 0.45 * max(len(rows), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    # Node lines: thin grey; thick green while leader; dotted while crashed.
    lead, down = _leader_spans(events, hi)
    base = [((lo, row_of[i]), (hi, row_of[i])) for i in rows]
    ax.add_collection(LineCollection(base, colors="#bdbdbd", linewidths=1.0, zorder=1))
    bands = [((max(a, lo), row_of[i]), (min(b, hi), row_of[i])) for i in rows for a, b in lead.get(i, ())
             if b >= lo and a <= hi]
    if bands:
        ax.add_collection(LineCollection(bands, colors="#a1d99b", linewidths=6, zorder=1, capstyle="butt"))
    gaps = [((max(a, lo), row_of[i]), (min(b, hi), row_of[i])) for i in rows for a, b in down.get(i, ())
            if b >= lo and a <= hi]
    if gaps:
        ax.add_collection(LineCollection(gaps, colors="white", linewidths=3, zorder=1))
        ax.add_collection(LineCollection(gaps, colors="#969696", linewidths=1.0, linestyles=":", zorder=1))

    # Messages.
    want = {"request": "send" in kinds or "deliver" in kinds, "reply": "reply" in kinds,
            "lost-request": "drop" in kinds, "lost-reply": "drop" in kinds, "duplicate": "duplicate" in kinds}
    shown = [a for a in match_messages(events)
             if want[a.leg] and a.src in row_of and a.dst in row_of and a.t1 >= lo and a.t0 <= hi]
    solid = [a for a in shown if a.leg in ("request", "reply")]
    if solid:
        x0 = np.array([a.t0 for a in solid])
        y0 = np.array([row_of[a.src] for a in solid], float)
        dx = np.array([a.t1 - a.t0 for a in solid])
        dy = np.array([row_of[a.dst] for a in solid], float) - y0
        colors = [(*_rgb(METHOD_COLORS.get(a.method, OTHER_METHOD)), 0.9 if a.leg == "request" else 0.55)
                  for a in solid]
        ax.quiver(x0, y0, dx, dy, color=colors, angles="xy", scale_units="xy", scale=1, units="dots",
                  width=1.2, headwidth=4.5, headlength=6, headaxislength=5, minlength=0.5, zorder=3)
        ok = [(a.t1, row_of[a.dst]) for a in solid if a.leg == "reply" and a.success is not None]
        if ok:
            marks = [a.success for a in solid if a.leg == "reply" and a.success is not None]
            for flag, marker in ((True, "+"), (False, "_")):
                pts = [p for p, s in zip(ok, marks) if s is flag]
                if pts:
                    ax.plot(*np.array(pts).T, ls="", marker=marker, ms=4, color="black", mew=0.8, zorder=4)
    lost = [a for a in shown if a.leg.startswith("lost")]
    if lost:
        segs = [((a.t0, row_of[a.src]), (a.t1, row_of[a.src] + 0.6 * (row_of[a.dst] - row_of[a.src])))
                for a in lost]
        ax.add_collection(LineCollection(segs, colors=[METHOD_COLORS.get(a.method, OTHER_METHOD) for a in lost],
                                         linewidths=1.0, linestyles="--", alpha=0.8, zorder=3))
        ax.plot([s[1][0] for s in segs], [s[1][1] for s in segs], ls="", marker="x", ms=6,
                color=MARKS["drop"][2], mew=1.5, zorder=4)
    dups = [a for a in shown if a.leg == "duplicate"]
    if dups:
        ax.add_collection(LineCollection([((a.t0, row_of[a.src]), (a.t1, row_of[a.dst])) for a in dups],
                                         colors=[METHOD_COLORS.get(a.method, OTHER_METHOD) for a in dups],
                                         linewidths=1.0, linestyles=":", zorder=3))

    # Point events and global events.
    marks: list[Event] = []
    by_mark: dict[str, list] = defaultdict(list)
    for e in events:
        if not (lo <= e.time <= hi) or e.kind not in kinds:
            continue
        if e.kind in GLOBAL_KINDS:
            marks.append(e)
            ax.axvline(e.time, color=GLOBAL_KINDS[e.kind], ls="--", lw=1.0, zorder=0)
            text = e.kind if not e.detail else f"{e.kind} {e.detail}"
            level = sum(1 for m in marks if m.kind in GLOBAL_KINDS) % 2   # stagger neighbours' labels
            ax.text(e.time, -0.62 - 0.3 * level, " " + (text if len(text) < 40 else text[:37] + "..."),
                    fontsize=7, ha="left", va="center", color=GLOBAL_KINDS[e.kind], clip_on=True)
            continue
        name = _mark_of(e)
        if name is None or e.kind == "drop" or e.node not in row_of:
            continue
        marks.append(e)
        by_mark[name].append((e.time, row_of[e.node]))
    for name, pts in by_mark.items():
        marker, size, face, edge, _ = MARKS[name]
        ax.plot(*np.array(pts).T, ls="", marker=marker, ms=size, mfc=face, mec=edge,
                color=edge, mew=1.0 if face != "none" else 1.3, zorder=5)

    ax.set_xlim(lo, hi)
    ax.set_ylim(len(rows) - 0.4, -1.05 if any(m.kind in GLOBAL_KINDS for m in marks) else -0.6)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label(i) for i in rows])
    ax.set_xlabel("time (s)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    n_msgs = sum(1 for a in shown if a.leg in ("request", "lost-request", "duplicate"))
    ax.set_title(f"space-time diagram, t = {lo:.3f} … {hi:.3f} s: {n_msgs} requests, "
                 f"{sum(1 for a in shown if a.leg == 'reply')} replies, "
                 f"{sum(1 for a in shown if a.leg.startswith('lost'))} lost", fontsize=10)

    handles = [Line2D([], [], color=METHOD_COLORS.get(m, OTHER_METHOD), lw=1.5, label=METHOD_LABELS.get(m, m))
               for m in sorted({a.method for a in shown}, key=lambda m: (m not in METHOD_COLORS, m))]
    if any(a.leg == "reply" for a in shown):
        handles.append(Line2D([], [], color="grey", alpha=0.6, lw=1.5, label="reply (+/- = granted/ok or not)"))
    if lost:
        handles.append(Line2D([], [], color="grey", ls="--", marker="x", mec="#d62728", label="lost"))
    if dups:
        handles.append(Line2D([], [], color="grey", ls=":", label="duplicate copy"))
    if bands:
        handles.append(Line2D([], [], color="#a1d99b", lw=6, label="leader"))
    for name in by_mark:
        marker, size, face, edge, text = MARKS[name]
        handles.append(Line2D([], [], ls="", marker=marker, ms=min(size, 9), mfc=face, mec=edge, color=edge,
                              label=text))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)

    fig.raftkit_arrows = len(shown)
    fig.raftkit_messages = shown
    fig.raftkit_marks = marks
    fig.raftkit_window = (lo, hi)
    return fig


# ------------------------------------------------------------ animation
def collect_frames(cluster, duration: float, fps: float = 10, *, step: float | None = None) -> list[ClusterState]:
    """Run ``cluster`` for ``duration`` seconds of cluster time and take a
    picture every ``step`` seconds (default ``1/fps``): ``round(duration * fps)``
    frames, the first one of the cluster as it is now. A small ``step`` makes
    slow motion (messages take milliseconds).

    >>> import raftkit
    >>> with raftkit.Cluster(3, seed=1) as c:
    ...     frames = collect_frames(c, 1.0, fps=5)
    >>> len(frames), round(frames[-1].time, 3)
    (5, 0.8)
    """
    if not isinstance(duration, (int, float)) or duration <= 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    dt = 1.0 / fps if step is None else step
    if not isinstance(dt, (int, float)) or dt <= 0:
        raise ValueError(f"step must be a positive number of seconds, got {step!r}")
    count = max(1, round(duration * fps))
    frames = [cluster.snapshot_state()]
    for _ in range(count - 1):
        cluster.run_for(dt)
        frames.append(cluster.snapshot_state())
    return frames


def export_animation(cluster_or_frames, path: str | os.PathLike, *, fps: float = 10, seconds: float = 2.0,
                     step: float | None = None, width_px: int = 900, height_px: int = 450) -> Path:
    """Write an animation of a run to ``path``: ``.gif`` (Pillow) or ``.html``
    (a self-contained JavaScript player, ``Animation.to_jshtml``).

    ``cluster_or_frames``: a Cluster (then :func:`collect_frames` runs it for
    ``seconds`` at ``fps``, ``step`` seconds of cluster time per frame) or a
    sequence of ``ClusterState`` pictures. Returns the path written.

    >>> import raftkit, tempfile, os
    >>> with raftkit.Cluster(3, seed=1) as c, tempfile.TemporaryDirectory() as d:
    ...     out = export_animation(c, os.path.join(d, "run.gif"), fps=5, seconds=0.6, width_px=300, height_px=150)
    ...     out.read_bytes()[:4]
    b'GIF8'
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".html", ".htm"):
        raise ValueError(f"the animation path must end in .gif or .html, got {str(path)!r}")
    if hasattr(cluster_or_frames, "snapshot_state"):
        frames = collect_frames(cluster_or_frames, seconds, fps, step=step)
    else:
        frames = list(cluster_or_frames)
        if not frames or not all(isinstance(f, ClusterState) for f in frames):
            raise TypeError("export_animation expects a Cluster or a non-empty sequence of ClusterState")
    frame = Frame((width_px + 1e-3) / DPI, (height_px + 1e-3) / DPI, DPI, bitmap_legend=True)
    anim = FuncAnimation(frame.fig, lambda k: frame.draw(frames[k]).axes, frames=len(frames),
                         init_func=lambda: frame.draw(frames[0]).axes, interval=1000.0 / fps,
                         blit=False, repeat=False, cache_frame_data=False)
    if suffix == ".gif":
        anim.save(path, writer=PillowWriter(fps=fps))
    else:
        path.write_text(anim.to_jshtml(fps=fps, default_mode="once"), encoding="utf-8")
    return path
