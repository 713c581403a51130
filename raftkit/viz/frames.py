"""State frames: what the live view's browser side draws, as plain JSON data.

A frame is one :class:`raftkit.ClusterState` turned into a small dict of
numbers and strings (``json.dumps`` takes it as it is). The kernel sends one
per played frame or click; the browser (``liveview.js``) draws it as SVG and
interpolates between two frames at the display's frame rate: a message is at
``(t - sent) / (arrive - sent)`` of its way at display time ``t``, a timer
arc at ``(t - start) / timeout``. Everything the browser needs to move things
between frames is in the frame, so the kernel's frame rate does not matter.

>>> import raftkit
>>> from raftkit.viz.frames import state_frame, positions
>>> with raftkit.Cluster(3, seed=1) as c:
...     c.run_for(1.0)
...     f = state_frame(c.snapshot_state())
>>> sorted(f)
['cut', 'leader', 'logs', 'messages', 'nodes', 'partition', 't', 'title']
>>> f["nodes"][f["leader"]]["role"]
'Leader'
>>> positions(3)[0]   # node 0 at the top (y grows upwards)
[0.0, 1.0]

The frame (all times in seconds of cluster time)
------------------------------------------------
``t``           the cluster time of the picture
``title``       one line: time, leader, max term, messages in flight
``leader``      id of the live leader in the highest term, or None
``partition``   the partition groups (lists of ids), or None
``cut``         ``[a, b]`` pairs (a < b) of nodes whose link cannot carry
                messages (an end disconnected, or in different groups)
``nodes``       per node: ``id``, ``role`` (Follower, Candidate, Leader or
                Dead), ``term``, ``vote`` (voted_for or None), ``alive``,
                ``connected``, ``commit``, ``applied``, ``last`` (last log
                index), ``votes`` (ids that voted for it in its term, for a
                candidate), and ``timer``: ``[start, timeout, exact]`` for a
                live follower or candidate (``exact`` False when the node
                did not say its timeout, as a student's own timer may not:
                then ``timeout`` is the top of the configured range), else None
``messages``    per message in flight: ``id``, ``key`` (id and phase: a
                request and its reply are different dots), ``src``/``dst``
                (the way it travels: a reply goes back), ``method``,
                ``phase`` (request / reply), ``sent``, ``arrive``, ``ok``
                (a reply's granted / success, or None), ``label``
                (its RPC summary), ``doomed`` (it will be lost: cut link or
                crashed end)
``logs``        per node: ``first`` (index of the first entry shown),
                ``terms`` (the terms of the last ``window`` entries),
                ``commit`` (commit index), ``snapshot`` (last included index),
                and for the leader's followers ``next`` / ``match``

The widget adds ``seq`` (a frame counter), ``playing`` and ``rate``
(seconds of cluster time per wall second while playing) before sending.
"""

from __future__ import annotations

import functools
import math

from ..state import ClusterState
from .draw import _groups, _link_ok, leader_of, ring_positions, role, title_of

__all__ = ["state_frame", "positions", "node_table", "WINDOW"]

WINDOW = 20            # log entries per row, at most
LABEL_CHARS = 120      # a message's summary is cut to this many characters


@functools.lru_cache(maxsize=32)
def positions(n: int) -> list:
    """Node positions for ``n`` nodes: ``networkx.circular_layout`` (via
    :func:`raftkit.viz.draw.ring_positions`), node 0 at the top, clockwise;
    ``[[x, y], ...]`` on the unit circle, y up."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return [[round(x, 6) + 0.0, round(y, 6) + 0.0] for x, y in ring_positions(n)]


def _num(x: float) -> float:
    """A finite float for JSON (times may be -inf for 'long ago')."""
    x = float(x)
    return x if math.isfinite(x) else (-1e9 if x < 0 else 1e9)


def _timer(ns, now: float, default_timeout: float):
    if not ns.alive or ns.state not in ("Follower", "Candidate"):
        return None
    if ns.timer_timeout > 0:
        return [_num(ns.timer_started), float(ns.timer_timeout), True]
    if default_timeout > 0:
        return [_num(ns.timer_started), float(default_timeout), False]
    return None


def _log_row(ns, leader, window: int) -> dict:
    lii = ns.last_included_index
    last = lii + len(ns.log_terms)
    first = max(lii + 1, last - window + 1)
    row = {"first": first, "terms": list(ns.log_terms[first - lii - 1:]), "commit": ns.commit_index,
           "snapshot": lii}
    if leader is not None and leader.id != ns.id:
        nxt, match = dict(leader.next_index), dict(leader.match_index)
        if ns.id in nxt:
            row["next"] = nxt[ns.id]
            row["match"] = match.get(ns.id, 0)
    return row


def state_frame(state: ClusterState, *, election_timeout: tuple = (0.150, 0.300),
                window: int = WINDOW) -> dict:
    """The frame of ``state`` (see the module doc). ``election_timeout``:
    the cluster's configured range, whose top is drawn for a node that did not
    record its own timeout; ``window``: log entries per row, at most."""
    if not isinstance(state, ClusterState):
        raise TypeError(f"state_frame expects a ClusterState (cluster.snapshot_state()), "
                        f"got {type(state).__name__}")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    nodes, now = state.nodes, float(state.time)
    n = len(nodes)
    groups = _groups(state)
    leader = leader_of(state)
    top = float(election_timeout[1]) if election_timeout else 0.0
    out_nodes = []
    for ns in nodes:
        r = role(ns)
        votes = ([j.id for j in nodes if j.id != ns.id and j.term == ns.term and j.voted_for == ns.id]
                 if r == "Candidate" else [])
        out_nodes.append({
            "id": ns.id, "role": r, "term": ns.term, "vote": ns.voted_for, "alive": ns.alive,
            "connected": ns.connected, "commit": ns.commit_index, "applied": ns.last_applied,
            "last": ns.last_included_index + len(ns.log_terms), "votes": votes,
            "timer": _timer(ns, now, top)})
    messages = []
    for m in sorted(state.messages, key=lambda m: m.id):
        src, dst = (m.src, m.dst) if m.phase == "request" else (m.dst, m.src)
        doomed = (not _link_ok(state, groups, src, dst) or (dst < n and not nodes[dst].alive)
                  or (src < n and not nodes[src].alive))
        summary = m.summary if m.phase == "request" else m.reply
        messages.append({
            "id": m.id, "key": f"{m.id}{'r' if m.phase == 'reply' else 'q'}", "src": src, "dst": dst,
            "method": m.method, "phase": m.phase, "sent": _num(m.sent), "arrive": _num(m.arrive),
            "ok": m.success, "label": summary[:LABEL_CHARS], "doomed": doomed})
    cut = [[a, b] for a in range(n) for b in range(a + 1, n) if not _link_ok(state, groups, a, b)]
    return {
        "t": now, "title": title_of(state), "leader": None if leader is None else leader.id,
        "partition": None if state.partition is None else [list(g) for g in state.partition],
        "cut": cut, "nodes": out_nodes, "messages": messages,
        "logs": [_log_row(ns, leader, window) for ns in nodes]}


def node_table(state: ClusterState, head: str | None = None) -> str:
    """The node table under the picture: one row per node. ``link`` says
    what the node's links can do: ``up``, ``down`` (disconnected), ``group k``
    (partitioned: talks to its group only) or ``-`` (crashed). ``head``:
    the first line (default: the time).

    >>> import raftkit
    >>> with raftkit.Cluster(3, seed=1) as c:
    ...     c.run_for(1.0); c.crash(1); c.partition([0], [2])
    ...     print(node_table(c.snapshot_state()))
    t=1.000s
     node  state      term  voted  last  commit  applied  link
        0  Leader        1      0     0       0        0  group 0
        1  crashed       1      0     0       0        0  -
        2  Follower      1      0     0       0        0  group 1
    """
    groups = _groups(state)
    rows = [f"t={state.time:.3f}s" if head is None else head,
            " node  state      term  voted  last  commit  applied  link"]
    for ns in state.nodes:
        st = ns.state if ns.alive else "crashed"
        voted = "-" if ns.voted_for is None else ns.voted_for
        if not ns.alive:
            link = "-"
        elif not ns.connected:
            link = "down"
        elif groups is not None:
            link = f"group {groups[ns.id]}" if ns.id in groups else "isolated"
        else:
            link = "up"
        rows.append(f" {ns.id:>4}  {st:<9} {ns.term:>5}  {voted!s:>5}  "
                    f"{ns.last_included_index + len(ns.log_terms):>4}  {ns.commit_index:>6}  "
                    f"{ns.last_applied:>7}  {link}")
    return "\n".join(rows)
