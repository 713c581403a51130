"""Static drawings of a cluster: the ring of nodes and the logs, RaftScope-style.

Everything here reads one immutable :class:`raftkit.ClusterState` (from
``cluster.snapshot_state()``) and draws it with matplotlib's object API (no
pyplot), so it is headless and safe to run on a render thread while the
cluster keeps running on others.

>>> import raftkit
>>> from raftkit.viz.draw import figure, render_png
>>> with raftkit.Cluster(3, seed=1) as c:
...     c.run_for(1.0)
...     state = c.snapshot_state()
>>> fig = figure(state)                 # a Figure: displays itself in Jupyter
>>> [ax.get_label() for ax in fig.axes]
['cluster', 'logs']
>>> render_png(state, 600, 300)[:4]    # PNG bytes for an ipywidgets.Image
b'\\x89PNG'

What is drawn
-------------
*Ring* (:func:`draw_cluster`): nodes on a circle (positions from
``networkx.circular_layout``, turned so that node 0 is at the top and ids run
clockwise), filled by role: follower blue, candidate orange, leader green,
crashed grey (a disconnected node gets a red dashed outline). Each node shows
``S<id>`` and ``T<term>``. Around each live follower or candidate, a grey arc
grows clockwise from the top with the fraction of its election timeout that
has elapsed, ``(time - timer_started) / timer_timeout``: when the arc closes,
the node starts an election. Inside a candidate, one small dot per peer,
placed towards that peer: filled = the peer voted for it in this term, grey =
the vote is granted but its reply is still in flight, hollow = no vote. The
state does not record which votes a candidate has counted, so votes are
derived from the *voters'* side: peer j counts as a vote for candidate c
when ``j.term == c.term and j.voted_for == c.id`` (a granted vote whose reply
is later lost still shows as filled). Messages in flight are dots on the line
between sender and receiver at ``(time - sent) / (arrive - sent)`` of the
way, with a short tail pointing back to where they come from, coloured by RPC
(RequestVote orange, AppendEntries teal, InstallSnapshot purple, KV request
pink); replies are hollow and carry ``+`` (granted / success) or ``-``.
Traffic i->j and j->i keeps to the right of its direction, so the two ways
use separate lanes. Links that cannot carry messages (a disconnected node, or
nodes in different partition groups) are drawn red and dashed ("cut");
messages that will be lost (cut link, crashed receiver) are faded. Clients
(KV clerks, bus endpoints >= n) appear as small squares at the bottom left
while they have messages in flight.

*Logs* (:func:`draw_logs`): one row per node, one box per entry at its
(1-based) index, coloured by term with the term inside; committed entries
(index <= the node's commit_index) solid, uncommitted ones light, hatched and
dashed. Entries covered by a snapshot are one grey "snapshot" block. Under
each follower's row, the current leader's view of it: a triangle at
``next_index`` and a dot at ``match_index``. At most the last ``window``
indexes (default 20) are shown, with ``1…k`` marking the elided prefix.
"""

from __future__ import annotations

import functools
import io
import math
import threading
from collections.abc import Sequence

import networkx as nx
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection, PathCollection
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.markers import MarkerStyle
from matplotlib.patches import Circle, Patch, Rectangle, Wedge
from matplotlib.path import Path
from matplotlib.textpath import TextPath
from matplotlib.transforms import IdentityTransform
from PIL import Image

from ..state import ClusterState, NodeState
from .figure import Figure

__all__ = ["draw_cluster", "draw_logs", "figure", "render_png", "cluster_graph", "ring_positions",
           "leader_of", "Frame", "ROLE_COLORS", "METHOD_COLORS", "term_color", "legend_handles"]

# ------------------------------------------------------------------ palette
ROLE_COLORS = {"Follower": "#c6dbef", "Candidate": "#fdd49e", "Leader": "#a1d99b", "Dead": "#d9d9d9"}
ROLE_EDGES = {"Follower": "#3182bd", "Candidate": "#e6550d", "Leader": "#238b45", "Dead": "#969696"}
METHOD_COLORS = {"request_vote": "#d95f02", "append_entries": "#1b9e77",
                 "install_snapshot": "#7570b3", "kv_request": "#e7298a"}
METHOD_LABELS = {"request_vote": "RequestVote", "append_entries": "AppendEntries",
                 "install_snapshot": "InstallSnapshot", "kv_request": "KV request"}
OTHER_METHOD = "#666666"
CUT = "#d62728"
TIMER = "#525252"
# Terms cycle through ColorBrewer Set3 without its grey (grey means "crashed" / "snapshot").
_TERMS = [c for k, c in enumerate(colormaps["Set3"].colors) if k != 8]
SNAPSHOT = "#e0e0e0"
WINDOW = 20        # log entries shown per row, at most
DPI = 100


def term_color(term: int):
    """The colour of ``term`` (terms cycle through 11 pastel colours; term 0 is white)."""
    return (1.0, 1.0, 1.0) if term <= 0 else _TERMS[(term - 1) % len(_TERMS)]


def method_color(method: str):
    return METHOD_COLORS.get(method, OTHER_METHOD)


def role(ns: NodeState) -> str:
    """'Follower' | 'Candidate' | 'Leader' | 'Dead' (a crashed node is 'Dead')."""
    return ns.state if ns.alive and ns.state in ROLE_COLORS else "Dead"


def _lighten(color, amount: float):
    r, g, b = color[:3]
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


# -------------------------------------------------------------- text paths
# Text artists cost ~0.4 ms each to draw; a frame has dozens of labels. So
# labels are drawn as glyph outlines in one PathCollection per call: one
# draw call however many labels there are.

@functools.lru_cache(maxsize=4096)
def _glyphs(text: str, ha: str, bold: bool) -> Path:
    """Outline of ``text`` at font size 1, anchored (ha, vertical centre) at 0,0."""
    tp = TextPath((0, 0), text, size=1.0, prop=FontProperties(weight="bold" if bold else "normal"))
    verts = tp.vertices.copy()
    if len(verts):
        x0, x1 = verts[:, 0].min(), verts[:, 0].max()
        verts[:, 0] -= {"left": x0, "right": x1}.get(ha, (x0 + x1) / 2)
    verts[:, 1] -= 0.36  # digits and capitals are ~0.73 em high: centre them
    return Path(verts, tp.codes)


def _labels(ax: Axes, texts: Sequence[str], xy, sizes, colors="black", *, ha="center",
            bold=False, zorder=5) -> PathCollection:
    """Many short labels (``sizes`` in points) as one collection."""
    paths = [_glyphs(t, ha, bold) for t in texts]
    sizes = np.broadcast_to(np.asarray(sizes, float), (len(paths),))
    coll = PathCollection(paths, sizes=sizes ** 2, offsets=np.asarray(xy, float).reshape(-1, 2),
                          offset_transform=ax.transData, transform=IdentityTransform(),
                          facecolors=colors, edgecolors="none", linewidths=0, zorder=zorder)
    ax.add_collection(coll, autolim=False)
    return coll


@functools.lru_cache(maxsize=16)
def _marker_path(marker: str) -> Path:
    style = MarkerStyle(marker)
    return style.get_path().transformed(style.get_transform())


def _dots(ax: Axes, xy, size, *, marker="o", face="black", edge="none", lw=0.0, zorder=5) -> PathCollection:
    """Markers (``size`` = diameter in points) as one collection: what
    ``ax.scatter`` draws, without its argument processing (~2 ms a call)."""
    xy = np.asarray(xy, float).reshape(-1, 2)
    coll = PathCollection([_marker_path(marker)], sizes=np.broadcast_to(np.asarray(size, float) ** 2, (len(xy),)),
                          offsets=xy, offset_transform=ax.transData, transform=IdentityTransform(),
                          facecolors=face, edgecolors=edge, linewidths=lw, zorder=zorder)
    ax.add_collection(coll, autolim=False)
    return coll


# ------------------------------------------------------------ graph model
@functools.lru_cache(maxsize=32)
def ring_positions(n: int) -> tuple:
    """Node positions on the unit circle: ``networkx.circular_layout`` turned so
    node 0 is at the top and ids run clockwise. ``((x, y), ...)``."""
    pos = nx.circular_layout(nx.complete_graph(n))
    return tuple((float(pos[i][1]), float(pos[i][0])) if n > 1 else (0.0, 0.0) for i in range(n))


def _groups(state: ClusterState) -> dict | None:
    if state.partition is None:
        return None
    return {i: k for k, grp in enumerate(state.partition) for i in grp}


def _link_ok(state: ClusterState, groups: dict | None, a: int, b: int) -> bool:
    """Can a and b talk as far as links go (ignoring crashes)? Clients
    (ids >= n) are in no partition group and reach every node."""
    n = len(state.nodes)
    if (a < n and not state.nodes[a].connected) or (b < n and not state.nodes[b].connected):
        return False
    if groups is None or a >= n or b >= n:
        return True
    ga = groups.get(a)
    return ga is not None and ga == groups.get(b)


def cluster_graph(state: ClusterState) -> nx.Graph:
    """The cluster as a networkx graph: the complete graph on the nodes, with
    node attributes ``pos, role, term, alive, connected`` and edge attributes
    ``cut`` (the link cannot carry messages: disconnected or partitioned) and
    ``down`` (an end is crashed).

    >>> import raftkit
    >>> with raftkit.Cluster(3, seed=1) as c:
    ...     c.partition([0, 1], [2])
    ...     g = cluster_graph(c.snapshot_state())
    >>> sorted(e for e in g.edges if g.edges[e]["cut"])
    [(0, 2), (1, 2)]
    """
    n = len(state.nodes)
    g = nx.complete_graph(n)
    pos = ring_positions(n)
    for ns in state.nodes:
        g.nodes[ns.id].update(pos=pos[ns.id], role=role(ns), term=ns.term, alive=ns.alive,
                              connected=ns.connected)
    groups = _groups(state)
    for a, b in g.edges:
        g.edges[a, b]["cut"] = not _link_ok(state, groups, a, b)
        g.edges[a, b]["down"] = not (state.nodes[a].alive and state.nodes[b].alive)
    return g


def _node_radius(n: int) -> float:
    return 0.3 if n == 1 else min(0.2, 0.7 * math.sin(math.pi / n))  # timer rings never touch


def _px_per_unit(ax: Axes) -> float:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    return min(ax.bbox.width / abs(x1 - x0), ax.bbox.height / abs(y1 - y0))


def _forget(ax: Axes, key: str) -> list:
    """Remove what the previous call of the same drawing added to ``ax``
    (so a Figure can be redrawn frame after frame without clearing it)."""
    owned = ax.__dict__.setdefault("_raftkit_artists", {})
    for artist in owned.pop(key, ()):
        try:
            artist.remove()
        except (ValueError, NotImplementedError):
            pass  # already gone (the axes were cleared)
    mine: list = []
    owned[key] = mine
    return mine


def legend_handles() -> list:
    """Legend entries for roles, RPC types, replies, cut links and log markers."""
    h = [Patch(facecolor=ROLE_COLORS[r], edgecolor=ROLE_EDGES[r], label=r if r != "Dead" else "crashed")
         for r in ("Follower", "Candidate", "Leader", "Dead")]
    h += [Line2D([], [], ls="", marker="o", ms=6, color=c, label=METHOD_LABELS[m])
          for m, c in METHOD_COLORS.items()]
    h += [Line2D([], [], ls="", marker="o", ms=6, mfc="white", mec="black", label="reply (+/-)"),
          Line2D([], [], color=CUT, ls="--", label="cut link"),
          Patch(facecolor=_lighten(term_color(1), 0.5), edgecolor="black", hatch="///", ls="--",
                label="uncommitted"),
          Line2D([], [], ls="", marker="^", ms=6, color="black", label="next_index"),
          Line2D([], [], ls="", marker="o", ms=4, color="black", label="match_index")]
    return h


# ------------------------------------------------------------ the ring
def draw_cluster(state: ClusterState, ax: Axes, *, legend: bool = True) -> Axes:
    """Draw the ring of nodes, timers, votes, links and messages in flight onto ``ax``.

    Calling it again on the same ``ax`` replaces the previous drawing (cheap:
    nothing else on the axes is touched). Returns ``ax``, with what was drawn
    in ``ax.raftkit_counts`` (nodes, links, cut_links, timers, votes,
    messages, replies, clients).

    >>> import raftkit
    >>> from matplotlib.figure import Figure
    >>> with raftkit.Cluster(5, seed=2) as c:
    ...     c.run_for(1.0)
    ...     c.crash(3)
    ...     state = c.snapshot_state()
    >>> ax = draw_cluster(state, Figure().add_subplot())
    """
    mine = _forget(ax, "cluster")
    if legend and ax.get_legend() is None:
        ax.legend(handles=legend_handles()[:10], loc="upper left", fontsize=6, ncol=1,
                  frameon=False, borderaxespad=0.0, handlelength=1.2)
    nodes = state.nodes
    n = len(nodes)
    g = cluster_graph(state)
    pos = np.array([g.nodes[i]["pos"] for i in range(n)], float).reshape(n, 2)
    r = _node_radius(n)
    lim = 1 + 2.0 * r if n > 1 else 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    ppu = _px_per_unit(ax)            # pixels per data unit (before the aspect fix: a lower bound)
    pt = 72.0 / ax.figure.dpi          # points per pixel
    add = mine.append

    # Links: faint when fine, dotted when an end is down, red dashed when cut.
    fine, down, cut = [], [], []
    for a, b, data in g.edges(data=True):
        seg = (pos[a], pos[b])
        (cut if data["cut"] else down if data["down"] else fine).append(seg)
    alpha = 0.55 if n <= 5 else 0.3
    if fine:
        add(ax.add_collection(LineCollection(fine, colors="#9e9e9e", linewidths=0.8, alpha=alpha, zorder=1)))
    if down:
        add(ax.add_collection(LineCollection(down, colors="#bdbdbd", linewidths=0.8, linestyles=":",
                                             alpha=alpha, zorder=1)))
    if cut:
        add(ax.add_collection(LineCollection(cut, colors=CUT, linewidths=1.0 if n <= 7 else 0.7,
                                             linestyles=(0, (4, 3)), alpha=0.7 if n <= 7 else 0.45, zorder=1)))

    # Nodes, and the election timer arcs around followers and candidates.
    roles = [g.nodes[i]["role"] for i in range(n)]
    circles = [Circle(pos[i], r) for i in range(n)]
    add(ax.add_collection(PatchCollection(
        circles, facecolors=[ROLE_COLORS[ro] for ro in roles], zorder=3,
        edgecolors=[CUT if nodes[i].alive and not nodes[i].connected else ROLE_EDGES[roles[i]]
                    for i in range(n)],
        linewidths=[2.2 if roles[i] == "Leader" else 1.4 for i in range(n)],
        linestyles=["--" if nodes[i].alive and not nodes[i].connected else "-" for i in range(n)])))
    rings, arcs = [], []
    ring_w = 0.22 * r
    for i, ns in enumerate(nodes):
        if roles[i] in ("Follower", "Candidate") and ns.timer_timeout > 0:
            frac = min(max((state.time - ns.timer_started) / ns.timer_timeout, 0.0), 1.0)
            rings.append(Wedge(pos[i], r * 1.08 + ring_w, 0, 360, width=ring_w))
            if frac > 0:
                arcs.append(Wedge(pos[i], r * 1.08 + ring_w, 90 - 360 * frac, 90, width=ring_w))
    if rings:
        add(ax.add_collection(PatchCollection(rings, facecolors="#eeeeee", edgecolors="none", zorder=2)))
    if arcs:
        add(ax.add_collection(PatchCollection(arcs, facecolors=TIMER, edgecolors="none", zorder=2)))

    # Labels: S<id> and T<term>, as one collection.
    fs = min(10.0, max(5.0, 0.42 * r * ppu * pt))
    texts, xy, cols = [], [], []
    for i, ns in enumerate(nodes):
        dead = roles[i] == "Dead"
        texts += [f"S{i}", f"T{ns.term}"]
        xy += [(pos[i][0], pos[i][1] + 0.28 * r), (pos[i][0], pos[i][1] - 0.3 * r)]
        cols += ["#757575" if dead else "black"] * 2
    add(_labels(ax, texts, xy, fs, cols, bold=True))

    # Votes inside candidates, one dot per peer, towards that peer.
    reply_votes = {(m.dst, m.src) for m in state.messages
                   if m.method == "request_vote" and m.phase == "reply" and m.success}
    vxy, vface = [], []
    for c, cs in enumerate(nodes):
        if roles[c] != "Candidate":
            continue
        for j, js in enumerate(nodes):
            if j == c:
                continue
            u = pos[j] - pos[c]
            u = u / (np.hypot(*u) or 1.0)
            vxy.append(pos[c] + 0.8 * r * u)
            granted = js.term == cs.term and js.voted_for == c
            vface.append("#9e9e9e" if (c, j) in reply_votes else "black" if granted else "white")
    if vxy:
        add(_dots(ax, vxy, min(9.0, max(3.0, 0.15 * r * ppu)) * pt, face=vface, edge="black", lw=0.5,
                  zorder=6))

    # Clients with messages in flight: small squares, bottom left.
    cpos = {}
    for m in state.messages:
        for e in (m.src, m.dst):
            if e >= n and e not in cpos:
                k = len(cpos)
                cpos[e] = np.array([-lim + 0.15 + 0.3 * (k % 6), -lim + 0.15 + 0.3 * (k // 6)])
    if cpos:
        sq = [Rectangle(p - 0.08, 0.16, 0.16) for p in cpos.values()]
        add(ax.add_collection(PatchCollection(sq, facecolors="white", edgecolors=method_color("kv_request"),
                                              linewidths=1.2, zorder=3)))
        add(_labels(ax, [f"C{e - n}" for e in cpos], [tuple(p) for p in cpos.values()], 6.0))

    def where(e):
        return pos[e] if e < n else cpos[e]

    def radius(e):
        return r if e < n else 0.1

    # Messages in flight: dot + tail; replies hollow with +/-.
    groups = _groups(state)
    dots, tails, tail_cols, dot_face, dot_edge, plus, minus = [], [], [], [], [], [], []
    msize = min(8.0, max(4.0, 0.28 * r * ppu)) * pt   # points
    for m in sorted(state.messages, key=lambda m: m.id):
        a, b = (m.src, m.dst) if m.phase == "request" else (m.dst, m.src)
        pa, pb = where(a), where(b)
        d = pb - pa
        length = np.hypot(*d)
        if length == 0:
            continue
        u = d / length
        side = np.array([u[1], -u[0]]) * 0.28 * r           # keep right: i->j and j->i apart
        start, end = pa + u * radius(a) + side, pb - u * radius(b) + side
        span = m.arrive - m.sent
        p = 1.0 if span <= 0 else min(max((state.time - m.sent) / span, 0.0), 1.0)
        at = start + (end - start) * p
        doomed = (not _link_ok(state, groups, a, b) or (b < n and not nodes[b].alive)
                  or (a < n and not nodes[a].alive))
        col = method_color(m.method)
        rgba = (*_rgb(col), 0.35 if doomed else 1.0)
        tail_len = min(0.35 * r + 0.05, np.hypot(*(at - start)))
        tails.append((at - u * tail_len, at))
        tail_cols.append((*_rgb(col), 0.25 if doomed else 0.6))
        dots.append(at)
        if m.phase == "reply":
            dot_face.append((1, 1, 1, 0.35 if doomed else 1.0))
            dot_edge.append(rgba)
            if m.success is True:
                plus.append(at)
            elif m.success is False:
                minus.append(at)
        else:
            dot_face.append(rgba)
            dot_edge.append(rgba)
    if dots:
        add(ax.add_collection(LineCollection(tails, colors=tail_cols, linewidths=max(1.0, msize * 0.3),
                                             capstyle="round", zorder=7)))
        add(_dots(ax, dots, msize, face=dot_face, edge=dot_edge, lw=1.2, zorder=8))
        if plus:
            add(_dots(ax, plus, msize * 0.7, marker="+", edge="black", lw=1.0, zorder=9))
        if minus:
            add(_dots(ax, minus, msize * 0.7, marker="_", edge="black", lw=1.0, zorder=9))

    if state.partition is not None:
        text = "partition: " + " | ".join("[" + ",".join(map(str, grp)) + "]" for grp in state.partition)
        add(_labels(ax, [text], [(0.0, -lim + 0.06)], 7.0, CUT))
    ax.raftkit_counts = dict(nodes=n, links=len(fine) + len(down) + len(cut), cut_links=len(cut),
                             timers=len(rings), votes=len(vxy), messages=len(dots),
                             replies=sum(1 for m in state.messages if m.phase == "reply"), clients=len(cpos))
    return ax


@functools.lru_cache(maxsize=64)
def _rgb(color: str) -> tuple:
    from matplotlib.colors import to_rgb
    return to_rgb(color)


# ------------------------------------------------------------ the logs
def leader_of(state: ClusterState) -> NodeState | None:
    """The live node that is leader in the highest term, or None."""
    leaders = [ns for ns in state.nodes if ns.alive and ns.state == "Leader"]
    return max(leaders, key=lambda ns: ns.term) if leaders else None


def draw_logs(state: ClusterState, ax: Axes, *, window: int = WINDOW) -> Axes:
    """Draw one row per node with its log entries onto ``ax`` (see module doc).

    Shows the last ``window`` indexes at most. Calling it again on the same
    ``ax`` replaces the previous drawing. Returns ``ax``, with what was drawn
    in ``ax.raftkit_counts`` (rows, window = (first, last index shown),
    committed and uncommitted boxes, snapshots, leader_markers).

    >>> import raftkit
    >>> from matplotlib.figure import Figure
    >>> with raftkit.Cluster(3, seed=2) as c:
    ...     c.one("x", 3)
    ...     state = c.snapshot_state()
    1
    >>> ax = draw_logs(state, Figure().add_subplot())
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    mine = _forget(ax, "logs")
    add = mine.append
    nodes = state.nodes
    n = len(nodes)
    last = [ns.last_included_index + len(ns.log_terms) for ns in nodes]
    top = max(last, default=0)
    if top <= window:
        lo, hi = 1, max(min(10, window), top)
    else:
        lo, hi = top - window + 1, top
    ax.set_xlim(lo - 3.3, hi + 1.6)
    ax.set_ylim(max(n, 5) - 0.35, -1.05)     # rows keep the height of five rows at least
    ax.set_axis_off()
    px_col = ax.bbox.width / (hi - lo + 4.9)
    px_row = ax.bbox.height / (max(n, 5) + 0.7)
    pt = 72.0 / ax.figure.dpi
    fs = min(9.0, 0.45 * px_col * pt, 0.36 * px_row * pt)
    label_fs = min(9.0, 0.55 * px_row * pt, 0.36 * px_col * pt * 1.6)

    boxes = {True: [], False: []}
    faces = {True: [], False: []}
    edges = {True: [], False: []}
    snaps, texts, txy, tcol = [], [], [], []
    for y, ns in enumerate(nodes):
        alive = ns.alive
        fade = 0.0 if alive else 0.55
        lii = ns.last_included_index
        if lii >= lo:                                    # the snapshot, as one block
            x0, x1 = lo, min(lii, hi)
            snaps.append(Rectangle((x0 - 0.45, y - 0.3), x1 - x0 + 0.9, 0.6))
            wide = x1 - x0 + 1 >= 4
            texts.append(f"snapshot ≤{lii}" if wide else "S")
            txy.append(((x0 + x1) / 2, y))
            tcol.append("#424242")
        for k in range(max(lo, lii + 1), min(hi, last[y]) + 1):
            term = ns.log_terms[k - lii - 1]
            committed = k <= ns.commit_index
            face = term_color(term) if committed else _lighten(term_color(term), 0.55)
            boxes[committed].append(Rectangle((k - 0.45, y - 0.3), 0.9, 0.6))
            faces[committed].append((*_lighten(face, fade), 1.0))
            edges[committed].append((*(_lighten((0.1, 0.1, 0.1), 0.5 + fade * 0.5)[:3]), 1.0)
                                    if not committed else (*_lighten((0.0, 0.0, 0.0), fade), 1.0))
            texts.append(str(term))
            txy.append((k, y))
            tcol.append("#757575" if not alive else "black")
    if snaps:
        add(ax.add_collection(PatchCollection(snaps, facecolors=SNAPSHOT, edgecolors="#757575",
                                              linewidths=0.9, zorder=2)))
    if boxes[True]:
        add(ax.add_collection(PatchCollection(boxes[True], facecolors=faces[True], edgecolors=edges[True],
                                              linewidths=0.9, zorder=2)))
    if boxes[False]:
        add(ax.add_collection(PatchCollection(boxes[False], facecolors=faces[False], edgecolors=edges[False],
                                              linewidths=0.9, linestyles="--", hatch="///", zorder=2)))
    if texts and fs >= 3.5:
        add(_labels(ax, texts, txy, fs, tcol, zorder=4))

    # Row labels with a role dot, and the index header.
    roles = [role(ns) for ns in nodes]
    rows = [f"S{i}" + ("  dead" if not ns.alive else " cut" if not ns.connected else "") for i, ns in
            enumerate(nodes)]
    add(_labels(ax, rows, [(lo - 2.8, y) for y in range(n)], label_fs,
                ["#757575" if not ns.alive else CUT if not ns.connected else "black" for ns in nodes],
                ha="left", bold=True))
    add(_dots(ax, [(lo - 3.05, y) for y in range(n)], label_fs * 0.9, face=[ROLE_COLORS[ro] for ro in roles],
              edge=[ROLE_EDGES[ro] for ro in roles], lw=0.8, zorder=3))
    step = 1 if hi - lo < 20 else 2
    heads = [str(k) for k in range(lo, hi + 1, step)]
    hxy = [(k, -0.75) for k in range(lo, hi + 1, step)]
    if lo > 1:
        heads.append(f"1…{lo - 1}")
        hxy.append((lo - 1.05, -0.75))
    add(_labels(ax, heads, hxy, min(fs, 7.5), "#616161"))

    # The leader's next_index (triangle) and match_index (dot) under each follower.
    leader = leader_of(state)
    if leader is not None:
        nxt, mat = dict(leader.next_index), dict(leader.match_index)
        txy_next, txy_match = [], []
        for j in range(n):
            if j == leader.id or j not in nxt:
                continue
            txy_next.append((min(max(nxt[j], lo - 1), hi + 1), j + 0.42))
            txy_match.append((min(max(mat.get(j, 0), lo - 1), hi + 1), j + 0.42))
        if txy_next:
            ms = min(7.0, max(3.0, 0.25 * px_row * pt))
            add(_dots(ax, txy_next, ms, marker="^"))
            add(_dots(ax, txy_match, ms * 0.6))
    ax.raftkit_counts = dict(rows=n, window=(lo, hi), committed=len(boxes[True]),
                             uncommitted=len(boxes[False]), snapshots=len(snaps),
                             leader_markers=0 if leader is None else len(txy_next))
    return ax


# ------------------------------------------------------------ figures
def title_of(state: ClusterState) -> str:
    leader = leader_of(state)
    term = max((ns.term for ns in state.nodes), default=0)
    who = f"leader S{leader.id} (term {leader.term})" if leader else "no leader"
    down = [ns.id for ns in state.nodes if not ns.alive]
    extra = f" · crashed {down}" if down else ""
    return f"t = {state.time:.3f} s · {who} · max term {term} · {len(state.messages)} in flight{extra}"


class Frame:
    """A reusable Figure with the two panels (graph left, logs right): the
    render path draws frame after frame into the same artists' axes."""

    def __init__(self, width: float, height: float, dpi: float = DPI, *, bitmap_legend: bool = False):
        self.fig = Figure(figsize=(width, height), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        legend_h = min(0.16, 0.62 / height)        # ~0.6 inch for two legend rows
        self.ax_graph = self.fig.add_axes((0.0, legend_h * 0.6, 0.42, 0.92 - legend_h * 0.6), label="cluster")
        self.ax_logs = self.fig.add_axes((0.43, legend_h, 0.56, 0.92 - legend_h), label="logs")
        for ax in (self.ax_graph, self.ax_logs):
            ax.set_axis_off()
        self.title = self.fig.text(0.5, 0.985, "", ha="center", va="top", fontsize=10)
        legend = self.fig.legend(handles=legend_handles(), loc="lower center", bbox_to_anchor=(0.5, 0.0),
                                 ncol=8, fontsize=6.5, frameon=False, handlelength=1.3, columnspacing=1.0,
                                 handletextpad=0.4, borderaxespad=0.2)
        if bitmap_legend:   # the legend never changes: draw it once, then paste its pixels each frame
            self.canvas.draw()
            box = legend.get_window_extent(self.canvas.get_renderer())
            w, h = self.canvas.get_width_height()
            x0, y0 = max(0, math.floor(box.x0)), max(0, math.floor(box.y0))
            x1, y1 = min(w, math.ceil(box.x1)), min(h, math.ceil(box.y1))
            pixels = np.asarray(self.canvas.buffer_rgba())[h - y1:h - y0, x0:x1].copy()
            legend.remove()
            self.fig.figimage(pixels, xo=x0, yo=y0, origin="upper", zorder=10)

    def draw(self, state: ClusterState) -> Figure:
        draw_cluster(state, self.ax_graph, legend=False)
        draw_logs(state, self.ax_logs)
        self.title.set_text(title_of(state))
        return self.fig


def figure(state: ClusterState, *, width: float = 10, height: float = 5) -> Figure:
    """A new Figure (``width`` x ``height`` inches): the ring on the left,
    the logs on the right, the time in the title.

    >>> import raftkit
    >>> with raftkit.Cluster(5, seed=3) as c:
    ...     c.run_for(1.0)
    ...     fig = figure(c.snapshot_state())
    >>> len(fig.axes)
    2
    """
    if not (isinstance(width, (int, float)) and isinstance(height, (int, float)) and width > 0 and height > 0):
        raise ValueError(f"width and height must be positive inches, got {width!r} x {height!r}")
    return Frame(width, height).draw(state)


_local = threading.local()
_RENDER_LOCK = threading.Lock()   # matplotlib is not thread-safe: one render at a time


def _frame_for(width_px: int, height_px: int) -> Frame:
    frames = _local.__dict__.setdefault("frames", {})
    frame = frames.get((width_px, height_px))
    if frame is None:
        while len(frames) >= 4:                 # a widget being resized: keep a few sizes only
            frames.pop(next(iter(frames)))
        # a hair over the pixel size, so the Agg canvas rounds to exactly it
        frame = Frame((width_px + 1e-3) / DPI, (height_px + 1e-3) / DPI, DPI, bitmap_legend=True)
        frames[(width_px, height_px)] = frame
    return frame


def render_png(state: ClusterState, width_px: int = 900, height_px: int = 450) -> bytes:
    """PNG bytes of :func:`figure` at exactly ``width_px`` x ``height_px`` pixels.

    Fast path for live widgets: each thread reuses one Figure per size and
    redraws only the cluster's artists; PNG compression is light. Safe to call
    from a render thread while the cluster runs in another (it only reads the
    immutable ``state``); renders from several threads take turns.

    >>> import raftkit
    >>> with raftkit.Cluster(3, seed=1) as c:
    ...     c.run_for(0.5)
    ...     png = render_png(c.snapshot_state(), 300, 150)
    >>> png[:4], len(png) > 1000
    (b'\\x89PNG', True)
    """
    for name, v in (("width_px", width_px), ("height_px", height_px)):
        if not isinstance(v, int) or isinstance(v, bool) or not 50 <= v <= 8000:
            raise ValueError(f"{name} must be an int between 50 and 8000 pixels, got {v!r}")
    if not isinstance(state, ClusterState):
        raise TypeError(f"render_png expects a ClusterState (cluster.snapshot_state()), got {type(state).__name__}")
    with _RENDER_LOCK:
        frame = _frame_for(width_px, height_px)
        frame.draw(state)
        frame.canvas.draw()
        w, h = frame.canvas.get_width_height()
        img = Image.frombuffer("RGBA", (w, h), bytes(frame.canvas.buffer_rgba()), "raw", "RGBA", 0, 1)
    out = io.BytesIO()
    img.convert("RGB").save(out, format="PNG", compress_level=1)
    return out.getvalue()
