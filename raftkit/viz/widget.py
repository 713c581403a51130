"""The live cluster view: RaftScope in a notebook, on the real implementation.

>>> import raftkit
>>> from raftkit.viz.widget import show
>>> c = raftkit.Cluster(5, seed=1)
>>> w = show(c)             # in a notebook, the last expression displays it
>>> w.tick_button.click()   # what the "Tick" button does: one scheduler event
>>> c.clock.events
1
>>> w.step_button.click()   # "Step": on to the next event the picture shows
>>> c.trace[-1].kind
'state'
>>> w.close(); c.stop()

Theory of operation
-------------------
The kernel must never block: frontend->kernel messages (clicks, slider moves)
are only processed while the kernel is idle. So:

* One lock (``_lock``) serialises every call into the cluster. A click runs
  its cluster call at once if the lock is free (it is, unless playing or
  rewinding); otherwise the call is queued and the thread holding the lock
  runs it before letting go (``_do``/``_drain``). A click never waits.
* Play is one background thread: each frame it runs ``cluster.run_for(speed)``
  (virtual clock; a real-clock cluster runs by itself, so it only redraws),
  takes ``snapshot_state()`` under the lock, then builds the state frame
  (``frames.state_frame``) outside it and sends it to the picture
  (``liveview.LiveView``), which draws SVG and animates between frames in
  the browser at the display's frame rate.
* Publishing to the widgets happens under a second lock, so at most one
  thread publishes; frames carry a sequence number and an older frame never
  replaces a newer.
* Clicks on the picture (a node, a message) and its keys (space, right
  arrow) arrive as messages on the kernel's main thread, like button clicks,
  and take the same path.
* Dragging the time slider rewinds on a short-lived background thread:
  ``furthest.rerun(until=t)`` re-runs the seed and the recorded user actions.
  The widget keeps the cluster that got furthest, so the slider can also go
  forward again; a recorded action (crash, partition, submit, ...) on a
  rewound cluster forks history: the old future is dropped.
* Nothing here prints. Errors go to the badge (safety violations and other
  ``RaftkitError``) or to the status line (bad input).
"""

from __future__ import annotations

import collections
import contextlib
import html
import itertools
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from ..errors import CheckFailed, RaftkitError, SafetyViolation
from .frames import node_table, state_frame

__all__ = ["ClusterWidget", "show", "parse_groups", "EVENTS_SHOWN", "VISIBLE_STEP_EVENTS"]

EVENTS_SHOWN = 15          # trace events listed under the picture
VISIBLE_STEP_EVENTS = 100_000  # scheduler events one visible Step runs at most
VISIBLE_STEP_SECONDS = 5.0     # cluster seconds one visible Step runs at most
DEFAULT_RATE = 0.0025      # sim s per frame: at 8 fps, 1/50 of real time, so a 1-5 ms message flies 50-250 ms
JOIN_TIMEOUT = 5.0         # wall seconds to wait for a background thread to end
LOCK_TIMEOUT = 30.0        # wall seconds a blocking call() waits for the cluster
SLIDER_STEP = 0.001        # time slider resolution (seconds of cluster time)

_OK_STYLE = "background:#2ca02c;color:white;padding:2px 10px;border-radius:4px;font-weight:bold"
_BAD_STYLE = "background:#d62728;color:white;padding:2px 10px;border-radius:4px;font-weight:bold"
_PRE = "margin:0;font-size:12px;line-height:1.3;white-space:pre"  # the node table keeps its columns
_WRAP = "margin:0;font-size:12px;line-height:1.3;white-space:pre-wrap;overflow-wrap:break-word"  # events wrap


def parse_groups(text: str) -> list[list[int]]:
    """Parse partition groups: ``"0 1 | 2 3 4"`` -> ``[[0, 1], [2, 3, 4]]``.

    Ids are separated by spaces or commas, groups by ``|``; empty groups are
    dropped (nodes in no group are isolated).

    >>> parse_groups("0 1 | 2,3,4")
    [[0, 1], [2, 3, 4]]
    """
    if not isinstance(text, str):
        raise TypeError(f"partition groups must be a string like '0 1 | 2 3 4', got {text!r}")
    groups = []
    for part in text.split("|"):
        ids = [x for x in re.split(r"[\s,]+", part.strip()) if x]
        try:
            groups.append([int(x) for x in ids])
        except ValueError:
            raise ValueError(f"partition groups look like '0 1 | 2 3 4', got {text!r}") from None
    groups = [g for g in groups if g]
    if not groups:
        raise ValueError(f"partition groups look like '0 1 | 2 3 4', got {text!r}")
    return groups


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = str(error).strip().splitlines()
    text = text[0] if text else ""
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _fields(summary: str) -> tuple[str, list[tuple[str, str]]]:
    """``"AppendEntries term=2 leader_id=0"`` -> ("AppendEntries", [("term", "2"), ...])."""
    words = summary.split()
    if not words:
        return "", []
    name, pairs, rest = words[0], [], []
    for w in words[1:]:
        if "=" in w:
            k, v = w.split("=", 1)
            pairs.append((k, v))
        else:
            rest.append(w)
    if rest:
        pairs.append(("(more)", " ".join(rest)))
    return name, pairs


def _table(rows, header=None) -> str:
    esc = html.escape
    out = ['<table style="border-collapse:collapse;font-size:12px">']
    if header:
        out.append("<tr>" + "".join(f'<th style="text-align:left;padding:1px 8px">{esc(str(h))}</th>'
                                    for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="padding:1px 8px">{esc(str(v))}</td>' for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


@dataclass
class _View:
    """Everything a frame shows, captured under the cluster lock."""

    seq: int
    cluster: Any
    state: Any            # ClusterState
    text: str             # repr(cluster)
    events: list
    now: float
    furthest: float
    events_run: int
    net: Any              # the bus's network knobs, if readable
    failure: BaseException | None
    playing: bool


class ClusterWidget(widgets.VBox):
    """A live, controllable view of a :class:`raftkit.Cluster`.

    ``fps``: frames per second while playing; ``rate``: initial simulated
    seconds per frame (the ``speed`` slider). See the module docstring for
    the threading rules. Public parts: ``view`` (the SVG picture, a
    :class:`~raftkit.viz.liveview.LiveView`; ``view.frame`` is the last
    state frame), ``state_text``, ``events``,
    ``badge``, ``status``, the controls (``play``, ``step_button`` (to the next
    visible event), ``tick_button`` (one scheduler event), ``speed``,
    ``time_slider``, ``node_picker``, ``crash_button``, ``restart_button``,
    ``disconnect_button``, ``connect_button``, ``partition_text``,
    ``partition_button``, ``heal_button``, ``command_text``, ``submit_button``,
    ``drop``, ``delay``, ``duplicate``, ``reorder``, ``seed``,
    ``reset_button``), ``inspector`` + ``inspector_html``, and ``cluster``
    (the current cluster: it changes on rewind and reset).
    """

    def __init__(self, cluster, *, fps: float = 8, rate: float = DEFAULT_RATE):
        if not hasattr(cluster, "snapshot_state") or not hasattr(cluster, "run_for"):
            raise TypeError(f"ClusterWidget needs a raftkit.Cluster, got {type(cluster).__name__}")
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 60:
            raise ValueError(f"fps must be a number in (0, 60], got {fps!r}")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
            raise ValueError(f"rate must be a positive number of simulated seconds per frame, got {rate!r}")
        self.fps = float(fps)
        self.cluster = cluster
        self.on_cluster_change: Callable[[Any, Any], None] | None = None  # (old, new), after rewind/reset
        self.frame_count = 0                  # frames drawn by the play thread
        self.frame_done = threading.Condition()  # notified after each play frame
        self._furthest = cluster              # the cluster that got furthest in time
        self._owned: list = []                # clusters this widget made (it stops them when dropped)
        self._lock = threading.Lock()         # every call into the cluster
        self._render_lock = threading.Lock()  # drawing and publishing a frame
        self._pending: collections.deque = collections.deque()
        self._local = threading.local()
        self._seq = itertools.count()
        self._published = -1
        self._failure: tuple | None = None    # (cluster, error)
        self._pause_requested = False
        self._thread: threading.Thread | None = None
        self._thread_stop: threading.Event | None = None
        self._rewind_mutex = threading.Lock()
        self._rewind_target: float | None = None
        self._rewind_thread: threading.Thread | None = None
        self._last_view: _View | None = None
        self._closed = False

        W = widgets
        self.badge = W.HTML()
        self.status = W.HTML(layout=W.Layout(margin="0 0 0 12px"))
        self.status.add_class("raftkit-status")
        from .liveview import LiveView
        self.view = LiveView(cluster.n, on_action=self._on_view_action,
                             on_error=lambda message: self._note(message, error=True))
        self.state_text = W.HTML(layout=W.Layout(min_width="480px", overflow="auto"))
        self.events = W.HTML(layout=W.Layout(flex="1 1 300px", max_height="260px", overflow="auto"))

        self.play = W.ToggleButton(value=False, description="Play", icon="play", tooltip="play / pause",
                                   layout=W.Layout(width="90px"))
        self.step_button = W.Button(description="Step", tooltip="run to the next visible event (key: right arrow)",
                                    layout=W.Layout(width="60px"))
        self.tick_button = W.Button(description="Tick", tooltip="run one scheduler event (key: shift + right arrow)",
                                    layout=W.Layout(width="55px"))
        lo = min(-3.0, _log10(rate))
        hi = max(0.3, _log10(rate))
        self.speed = W.FloatLogSlider(value=rate, base=10, min=lo, max=hi, step=0.05,
                                      description="sim s/frame", readout_format=".4f",
                                      style={"description_width": "initial"})
        self.time_slider = W.FloatSlider(value=0.0, min=0.0, max=0.0, step=SLIDER_STEP, description="time",
                                         readout_format=".3f", continuous_update=False,
                                         layout=W.Layout(width="360px"),
                                         tooltip="drag back to rewind, forward to replay")

        ids = list(range(cluster.n))
        self.node_picker = W.Dropdown(options=[(f"node {i}", i) for i in ids], value=ids[0],
                                      description="node", layout=W.Layout(width="160px"),
                                      style={"description_width": "40px"})
        self.crash_button = W.Button(description="Crash", layout=W.Layout(width="80px"))
        self.restart_button = W.Button(description="Restart", layout=W.Layout(width="80px"))
        self.disconnect_button = W.Button(description="Disconnect", layout=W.Layout(width="95px"))
        self.connect_button = W.Button(description="Connect", layout=W.Layout(width="80px"))
        self.partition_text = W.Text(value=_default_partition(cluster.n), placeholder="0 1 | 2 3 4",
                                     layout=W.Layout(width="130px"))
        self.partition_button = W.Button(description="Partition", layout=W.Layout(width="85px"))
        self.heal_button = W.Button(description="Heal", layout=W.Layout(width="65px"))

        self.command_text = W.Text(value="x=1", placeholder="command", description="command",
                                   layout=W.Layout(width="240px"), style={"description_width": "70px"})
        self.submit_button = W.Button(description="Submit",
                                      tooltip="submit to the current leader (click a node to submit to it)",
                                      layout=W.Layout(width="80px"))
        self.seed = W.IntText(value=getattr(cluster, "seed", 0), description="seed",
                              layout=W.Layout(width="140px"), style={"description_width": "40px"})
        self.reset_button = W.Button(description="Reset", tooltip="a new cluster of the same size and options",
                                     layout=W.Layout(width="70px"))

        knob = dict(continuous_update=False, readout_format=".2f", style={"description_width": "70px"},
                    layout=W.Layout(width="260px"))
        self.drop = W.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.01, description="drop", **knob)
        self.delay = W.FloatSlider(value=0.0, min=0.0, max=0.2, step=0.005, description="max delay", **knob)
        self.duplicate = W.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.01, description="duplicate", **knob)
        self.reorder = W.Checkbox(value=False, description="long reordering", indent=False)

        self.inspector = W.Dropdown(options=[(f"node {i}", f"node:{i}") for i in ids], value="node:0",
                                    description="inspect", layout=W.Layout(width="420px"),
                                    style={"description_width": "50px"})
        self.inspector_html = W.HTML()

        if not cluster.virtual:
            for w in (self.step_button, self.tick_button, self.speed, self.time_slider):
                w.disabled = True

        self.play.observe(self._on_play, "value")
        self.step_button.on_click(self._on_step)
        self.tick_button.on_click(self._on_tick)
        self.time_slider.observe(self._on_time, "value")
        self.crash_button.on_click(lambda _: self._node_action("crash"))
        self.restart_button.on_click(lambda _: self._node_action("restart"))
        self.disconnect_button.on_click(lambda _: self._node_action("disconnect"))
        self.connect_button.on_click(lambda _: self._node_action("connect"))
        self.partition_button.on_click(self._on_partition)
        self.heal_button.on_click(lambda _: self._act(lambda c: c.heal(), "healed: every link up"))
        self.submit_button.on_click(self._on_submit)
        self.drop.observe(self._on_drop, "value")
        self.delay.observe(self._on_delay, "value")
        self.duplicate.observe(self._on_duplicate, "value")
        self.reorder.observe(self._on_reorder, "value")
        self.reset_button.on_click(lambda _: self.reset())
        self.inspector.observe(self._on_inspect, "value")

        H, V = W.HBox, W.VBox
        row = dict(layout=W.Layout(align_items="center", flex_flow="row wrap"))
        # What a laptop screen shows without scrolling: the picture and three
        # rows of controls; the table, events, network knobs and inspector fold.
        self.panels = W.Accordion(children=[
            H([self.state_text, self.events], layout=W.Layout(align_items="flex-start", flex_flow="row wrap")),
            H([self.drop, self.delay, self.duplicate, self.reorder], **row),
            V([self.inspector, self.inspector_html]),
        ], selected_index=None)
        for k, name in enumerate(("nodes and events", "network faults", "inspector")):
            self.panels.set_title(k, name)
        children = [
            H([self.badge, self.status], **row),
            self.view,
            H([self.play, self.step_button, self.tick_button, self.speed, self.time_slider], **row),
            H([self.node_picker, self.crash_button, self.restart_button, self.disconnect_button,
               self.connect_button, W.HTML("&nbsp;&nbsp;partition"), self.partition_text,
               self.partition_button, self.heal_button], **row),
            H([self.command_text, self.submit_button, W.HTML("&nbsp;&nbsp;"), self.seed, self.reset_button],
              **row),
            self.panels,
        ]
        super().__init__(children=children)
        self.refresh()

    # ------------------------------------------------------------ public
    def __repr__(self):  # short and stable (nbval compares text/plain)
        c = self.cluster
        return (f"ClusterWidget(n={c.n}, seed={getattr(c, 'seed', '?')}, "
                f"clock={'virtual' if c.virtual else 'real'})")

    @property
    def playing(self) -> bool:
        """True while the play thread runs."""
        t, stop = self._thread, self._thread_stop
        return t is not None and t.is_alive() and stop is not None and not stop.is_set()

    @property
    def play_thread(self) -> threading.Thread | None:
        """The play thread, or None when not playing."""
        t = self._thread
        return t if t is not None and t.is_alive() else None

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    @property
    def furthest(self):
        """The cluster that got furthest in time (the time slider's end)."""
        return self._furthest

    def refresh(self) -> None:
        """Render the current state now (waits for the cluster lock, bounded)."""
        if not self._lock.acquire(timeout=LOCK_TIMEOUT):
            self._note("busy: the cluster is still running a long call", error=True)
            return
        try:
            view = self._capture()
        finally:
            self._lock.release()
        self._publish(view)

    def call(self, fn: Callable[[Any], Any], *, action: bool = False) -> Any:
        """Run ``fn(cluster)`` under the widget's lock and redraw; returns
        its result and lets its exceptions through (a RaftkitError also turns
        the badge red). ``action=True`` if ``fn`` changes the run (crash,
        partition, submit...): on a rewound cluster that forks history. For
        code in cells (the ``%raft`` magic); buttons never wait like this."""
        if not self._lock.acquire(timeout=LOCK_TIMEOUT):
            raise RuntimeError("the widget's cluster is busy (a long rewind or frame); try again")
        view = result = error = None
        try:
            try:
                result = self._run_one(lambda: fn(self.cluster), action, reraise=True)
            except Exception as e:
                error = e
            if not self.playing:
                view = self._capture()
        finally:
            self._lock.release()
        self._after_release(view)
        if error is not None:
            raise error
        return result

    def advance(self, seconds: float) -> None:
        """Run the cluster for ``seconds`` of cluster time, as Play does
        (replaying the recorded future after a rewind). Blocking; for cells."""
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds >= 0:
            raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
        if not self.cluster.virtual:
            self.call(lambda c: c.run_for(seconds))
        else:
            self.call(lambda c: self._advance_locked(seconds))

    def step(self, k: int = 1) -> list:
        """Run ``k`` scheduler events, as the Step button does; returns their
        events (None where nothing was pending). Blocking; for cells."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        def steps(_c):
            out = []
            for _ in range(k):
                out.append(self._step_one())
                if out[-1] is None:
                    break
            return out
        return self.call(steps)

    def rewind(self, t: float) -> None:
        """Show the run as it was at cluster time ``t`` (clamped to
        ``[0, furthest]``), re-running the seed and recorded actions; moving
        to the furthest time returns to that very cluster. Pauses play.
        What the time slider calls (from a background thread)."""
        if threading.current_thread() is not self._thread:
            self._set_play(False)
        if not self._lock.acquire(timeout=LOCK_TIMEOUT):
            self._note("busy: could not rewind", error=True)
            return
        view = None
        try:
            self._run_one(lambda: self._rewind_locked(t), False)
            view = self._capture()
        finally:
            self._lock.release()
        self._after_release(view)

    def reset(self, seed: int | None = None) -> None:
        """A new cluster of the same size and options with ``seed`` (default:
        the ``seed`` box); the history starts again at time 0."""
        seed = self.seed.value if seed is None else seed
        self._do(lambda: self._reset_locked(seed))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) until no rewind is running or queued and no click
        is pending. Returns True when idle. For tests and scripts."""
        deadline = time.monotonic() + timeout
        while True:
            t = self._rewind_thread
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
            if (self._rewind_thread is None or not self._rewind_thread.is_alive()) and not self._pending:
                return True
            self._drain()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def wait_for_frames(self, n: int, timeout: float = 10.0) -> bool:
        """Wait (bounded) until the play thread has drawn ``n`` frames in all."""
        with self.frame_done:
            return self.frame_done.wait_for(lambda: self.frame_count >= n, timeout)

    def close(self) -> None:
        """Stop the play thread, then close the widget and its parts. The
        current cluster keeps running (it is yours); clusters the widget made
        and no longer shows are stopped."""
        if self._closed:
            return
        self._closed = True
        self._stop_play(join=True)
        with self._rewind_mutex:
            self._rewind_target = None
        t = self._rewind_thread
        if t is not None and t is not threading.current_thread():
            t.join(JOIN_TIMEOUT)
        if self._lock.acquire(timeout=JOIN_TIMEOUT):
            try:
                for c in self._owned:
                    if c is not self.cluster:
                        c.stop()
                self._owned = [c for c in self._owned if c is self.cluster]
                self._furthest = self.cluster
            finally:
                self._lock.release()
        for w in self._parts():
            w.close()
        super().close()

    # ------------------------------------------------------------ handlers
    def _on_play(self, change):
        playing = bool(change["new"])
        self.play.description = "Pause" if playing else "Play"
        self.play.icon = "pause" if playing else "play"
        if playing and not self._closed:
            self._note("playing" + ("" if self.cluster is self._furthest else " the recorded run again"))
            self._start_play()
        else:
            self._stop_play(join=threading.current_thread() is not self._thread)
            if self.status.value.endswith(">playing</span>") or "playing the recorded" in self.status.value:
                self._note(f"paused at t={self.cluster.now:.4f}s")  # other notes (errors) stay

    def _on_step(self, _button=None):
        self._do(self._step_visible_locked)

    def _on_tick(self, _button=None):
        self._do(self._step_locked)

    def _step_locked(self):
        event = self._step_one()
        self._note("nothing pending" if event is None else f"tick: {event}")

    def _step_visible_locked(self):
        event = self._next_visible()
        self._note("nothing visible happened" if event is None else f"step: {event}")

    def _next_visible(self):
        """Caller holds the lock: run scheduler events until one that the
        picture shows (a message sent, delivered, answered or lost, a state
        change, a vote, a commit, an apply: anything but a timer's tick), at
        most VISIBLE_STEP_EVENTS events or VISIBLE_STEP_SECONDS of cluster
        time. Returns that event, or None."""
        c = self.cluster
        if not c.virtual:
            raise RuntimeError('Step needs the virtual clock: Cluster(..., clock="virtual")')
        deadline = c.now + VISIBLE_STEP_SECONDS
        for _ in range(VISIBLE_STEP_EVENTS):
            event = self._step_one()
            if event is None:
                return None
            if event.kind != "tick":
                return event
            if self.cluster.now >= deadline:
                return None
        return None

    def _step_one(self):
        """Caller holds the lock: one scheduler event. On a rewound cluster,
        the recorded actions due before it are re-applied first."""
        c = self.cluster
        if not c.virtual:
            raise RuntimeError('Step needs the virtual clock: Cluster(..., clock="virtual")')
        f = self._furthest
        while c is not f:  # re-apply the recorded actions that were taken at this very point
            future = f.actions[len(c.actions):]
            if not future or future[0].events != c.clock.events:
                break
            a = future[0]
            c.advance_to(a.events, a.time)
            getattr(c, a.method)(*a.args, **dict(a.kwargs))
        return c.step()

    def _advance_locked(self, dt):
        """Caller holds the lock: run ``dt`` seconds of cluster time. On a
        rewound cluster this replays the recorded future: the user actions
        of the furthest run happen again at the same points, and on reaching
        the furthest point this cluster takes its place."""
        c = self.cluster
        target = c.now + dt
        f = self._furthest
        if c is not f:
            c.follow(f, until=min(target, f.now))  # the same seed and actions: the same run
            self._catch_up()
            c = self.cluster
        if target > c.now:
            c.run_for(target - c.now)

    def _node_action(self, method, i=None):
        i = self.node_picker.value if i is None else i
        done = {"crash": "crashed", "restart": "restarted", "disconnect": "disconnected",
                "connect": "connected", "timeout_now": "timed out: it starts an election at its next tick"}[method]
        self._act(lambda c: getattr(c, method)(i), f"node {i} {done}")

    def _on_view_action(self, action, *args):
        """A click or key on the picture (checked by ``liveview.parse_action``)."""
        if action == "play":
            self.play.value = not self.play.value
        elif action == "step":
            if self.cluster.virtual:
                self._on_step()
        elif action == "tick":
            if self.cluster.virtual:
                self._on_tick()
        elif action == "drop":
            (ident,) = args
            self._act(lambda c: c.drop_message(ident), f"message {ident} dropped")
        elif action == "submit":
            self._submit(args[0])
        elif action == "partition":
            (groups,) = args
            text = " | ".join(" ".join(map(str, g)) for g in groups)
            with self._sync():
                self.partition_text.value = text
            self._act(lambda c: c.partition(*groups), f"partitioned: {text}")
        else:
            (node,) = args
            self.node_picker.value = node
            self._node_action("timeout_now" if action == "timeout" else action, node)

    def _on_partition(self, _=None):
        try:
            groups = parse_groups(self.partition_text.value)
        except (TypeError, ValueError) as e:
            self._note(str(e), error=True)
            return
        self._act(lambda c: c.partition(*groups), "partitioned: " + " | ".join(map(str, groups)))

    def _on_submit(self, _=None):
        self._submit(None)

    def _submit(self, node):
        """Submit the command box's text to ``node`` (None: the current leader)."""
        command = self.command_text.value

        def submit(c):
            index, term, ok = c.submit(command, node=node)
            if ok:
                return f"submitted {command!r}" + ("" if node is None else f" to node {node}") + \
                    f": index {index}, term {term}"
            if node is None:
                return f"{command!r} not accepted: no leader right now (term {term})"
            return f"{command!r} not accepted: node {node} is not a leader (term {term})"
        self._act(submit, None)

    def _on_drop(self, change):
        if not self._syncing():
            v = float(change["new"])
            self._act(lambda c: c.set_network(request_drop=v, reply_drop=v), f"request/reply drop = {v:.2f}")

    def _on_delay(self, change):
        if not self._syncing():
            v = float(change["new"])
            self._act(lambda c: c.set_network(delay=(0.0, v)), f"extra delay 0..{v:.3f} s")

    def _on_duplicate(self, change):
        if not self._syncing():
            v = float(change["new"])
            self._act(lambda c: c.set_network(duplicate=v), f"duplicate = {v:.2f}")

    def _on_reorder(self, change):
        if not self._syncing():
            v = bool(change["new"])
            self._act(lambda c: c.set_network(long_reordering=v), f"long reordering {'on' if v else 'off'}")

    def _on_time(self, change):
        if self._syncing() or self._closed or not self.cluster.virtual:
            return
        self._set_play(False)  # dragging the timeline pauses, as in RaftScope
        with self._rewind_mutex:
            self._rewind_target = float(change["new"])
            if self._rewind_thread is None or not self._rewind_thread.is_alive():
                self._rewind_thread = threading.Thread(target=self._rewind_worker, daemon=True,
                                                       name="raftkit-widget-rewind")
                self._rewind_thread.start()

    def _rewind_worker(self):
        while True:
            with self._rewind_mutex:
                t, self._rewind_target = self._rewind_target, None
                if t is None or self._closed:
                    return
            try:
                self.rewind(t)
            except Exception as e:  # never raise into the notebook
                self._note(_one_line(e), error=True)

    def _on_inspect(self, change):
        if self._last_view is not None:
            self.inspector_html.value = self._inspect_html(self._last_view, change["new"])

    # -------------------------------------------------- locked operations
    def _act(self, fn, message):
        """A recorded user action on the cluster (forks a rewound history)."""
        def run():
            result = fn(self.cluster)
            self._note(message if message is not None else str(result))
        self._do(run, action=True)

    def _do(self, fn, action=False):
        """Run ``fn()`` under the cluster lock: now if the lock is free, else
        the thread holding it runs it before letting go. Never waits."""
        self._pending.append((fn, action))
        self._drain()

    def _drain(self):
        while self._pending:
            if not self._lock.acquire(blocking=False):
                return  # the holder drains after releasing
            view = None
            try:
                ran = False
                while self._pending:
                    fn, action = self._pending.popleft()
                    self._run_one(fn, action)
                    ran = True
                if ran and not self.playing:
                    view = self._capture()
            finally:
                self._lock.release()
            self._after_release(view)

    def _run_one(self, fn, action, reraise=False):
        """Caller holds the lock. Runs fn, keeps the rewind bookkeeping,
        routes errors to the badge / status line."""
        try:
            if action:
                self._fork()
            return fn()
        except CheckFailed as e:  # a harness check, not a broken cluster
            self._note(_one_line(e), error=True)
            if reraise:
                raise
        except RaftkitError as e:
            self._fail(e)
            if reraise:
                raise
        except Exception as e:
            self._note(_one_line(e), error=True)
            if reraise:
                raise
        finally:
            self._catch_up()

    def _after_release(self, view):
        if view is not None:
            self._publish(view)
        if self._pause_requested:
            self._pause_requested = False
            self._set_play(False)
        if self._pending:
            self._drain()

    def _fork(self):
        """Acting on a rewound cluster drops the old future."""
        if self.cluster is not self._furthest:
            old, self._furthest = self._furthest, self.cluster
            self._discard(old)

    def _catch_up(self):
        """A rewound cluster that re-played as far as the furthest one
        replaces it (same seed, same actions: the same run); one that went
        past it some other way is a new history anyway."""
        c, f = self.cluster, self._furthest
        if c is f or not c.virtual:
            return
        here, there = (c.now, c.clock.events), (f.now, f.clock.events)
        if here > there or (here == there and len(c.actions) >= len(f.actions)):
            self._furthest = c
            self._discard(f)

    def _discard(self, c):
        """Stop a cluster this widget made, once nothing shows it."""
        if c is self.cluster or c is self._furthest:
            return
        if any(o is c for o in self._owned):
            self._owned = [o for o in self._owned if o is not c]
            try:
                c.stop()
            except Exception:
                pass

    def _set_cluster(self, new):
        old, self.cluster = self.cluster, new
        if old is not new:
            self._discard(old)
            callback = self.on_cluster_change
            if callback is not None:
                try:
                    callback(old, new)
                except Exception as e:
                    self._note(f"on_cluster_change failed: {_one_line(e)}", error=True)

    def _rewind_locked(self, t):
        f = self._furthest
        if not f.virtual:
            raise RuntimeError("rewind needs the virtual clock: real-clock runs do not repeat")
        t = min(max(0.0, float(t)), f.now)
        if f.now - t < SLIDER_STEP / 2:
            new = f
        elif t == self.cluster.now:
            return
        else:
            new = f.rerun(until=t)
            self._owned.append(new)
        self._set_cluster(new)
        self._note(f"at t={new.now:.3f}s" + ("" if new is f else
                   f" (rewound; furthest t={f.now:.3f}s — any action now forks history)"))

    def _reset_locked(self, seed):
        old, oldf = self.cluster, self._furthest
        new = type(old)(old.n, **{**old.options, "seed": seed, "data_dir": None})  # a fresh run, in memory
        self._owned.append(new)
        self._furthest = new
        self._failure = None
        self._set_cluster(new)
        self._discard(oldf)
        self._note(f"new cluster: n={new.n}, seed={seed}")

    def _fail(self, error):
        self._failure = (self.cluster, error)
        self._pause_requested = True
        stop = self._thread_stop
        if stop is not None:
            stop.set()
        what = (f"safety violation: {error.invariant}" if isinstance(error, SafetyViolation)
                else _one_line(error))
        self._note(what + " — playing stopped", error=True)

    # --------------------------------------------------------------- play
    def _set_play(self, flag):
        if self.play.value != flag:
            self.play.value = flag  # the observer starts / stops the thread
        elif not flag:
            self._stop_play(join=threading.current_thread() is not self._thread)

    def _start_play(self):
        if self.playing:
            return
        self._stop_play(join=True)  # an old thread still finishing its frame
        stop = threading.Event()
        self._thread_stop = stop
        self._thread = threading.Thread(target=self._play_loop, args=(stop,), daemon=True,
                                        name="raftkit-widget-play")
        self._thread.start()

    def _stop_play(self, join):
        stop, t = self._thread_stop, self._thread
        if stop is not None:
            stop.set()
        if join and t is not None and t is not threading.current_thread():
            t.join(JOIN_TIMEOUT)
            if not t.is_alive() and self._thread is t:
                self._thread = None

    def _play_loop(self, stop):
        period = 1.0 / self.fps
        try:
            while not stop.is_set():
                start = time.monotonic()
                while not self._lock.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                view = None
                try:
                    while self._pending:
                        fn, action = self._pending.popleft()
                        self._run_one(fn, action)
                    if not stop.is_set() and self.cluster.virtual:
                        dt = float(self.speed.value)
                        self._run_one(lambda: self._advance_locked(dt), False)
                    if self.cluster.stopped:  # stopped from a cell: nothing left to play
                        stop.set()
                        self._note("play stopped: the cluster was stopped (c.stop())")
                    view = self._capture(playing=not stop.is_set())
                finally:
                    self._lock.release()
                self._after_release(view)
                with self.frame_done:
                    self.frame_count += 1
                    self.frame_done.notify_all()
                stop.wait(max(0.0, period - (time.monotonic() - start)))
        except Exception as e:  # never raise or print from this thread
            self._note(f"play stopped: {_one_line(e)}", error=True)
            stop.set()
        finally:
            if self.play.value and stop is self._thread_stop:
                try:
                    self.play.value = False
                except Exception:
                    pass
            if not self._closed:
                self._publish_paused()

    def _publish_paused(self):
        """The play thread's last frame: the picture stops animating there,
        and the inspector lists the messages in flight again."""
        if self._lock.acquire(timeout=1.0):
            try:
                view = self._capture(playing=False)
            finally:
                self._lock.release()
            self._publish(view)
        else:  # someone else is publishing a newer frame anyway
            self.refresh_inspector_options()

    # ------------------------------------------------------------ drawing
    def _capture(self, playing=None) -> _View:
        """Caller holds the lock: copy what a frame shows."""
        c = self.cluster
        state = None
        for _ in range(5):  # a real-clock cluster changes under our feet
            try:
                state = c.snapshot_state()
                break
            except RuntimeError:
                time.sleep(0.001)
        failure = self._failure[1] if self._failure is not None and self._failure[0] is c else None
        net = getattr(getattr(c, "bus", None), "net", None)
        return _View(next(self._seq), c, state, repr(c), list(c.trace[-EVENTS_SHOWN:]), c.now,
                     self._furthest.now, getattr(getattr(c, "clock", None), "events", 0), net, failure,
                     self.playing if playing is None else playing)

    def _publish(self, view: _View):
        with self._render_lock:
            if view.seq <= self._published or self._closed:
                return
            self._published = view.seq
            self._last_view = view
            frame, text = None, view.text
            if view.state is not None:
                try:
                    frame = self._frame(view)
                    text = node_table(view.state, head=view.text.splitlines()[0])
                except Exception as e:  # a drawing bug must not kill the view
                    self._note(f"drawing failed: {_one_line(e)}", error=True)
            with self._sync():
                try:
                    if frame is not None:
                        self.view.frame = frame
                    self.state_text.value = f'<pre style="{_PRE}">{html.escape(text, quote=False)}</pre>'
                    self.events.value = self._events_html(view)
                    self.badge.value = self._badge_html(view)
                    self._sync_slider(view)
                    self._sync_knobs(view)
                    if not view.playing:
                        self._sync_inspector_options(view)
                    self.inspector_html.value = self._inspect_html(view, self.inspector.value)
                except Exception as e:
                    self._note(f"display update failed: {_one_line(e)}", error=True)

    def _frame(self, view):
        c = view.cluster
        config = getattr(c, "config", None)
        frame = state_frame(view.state, election_timeout=config.election_timeout if config else (0.15, 0.3))
        rate = float(self.speed.value) * self.fps if c.virtual else float(getattr(c.clock, "speed", 1.0))
        frame.update(seq=view.seq, playing=bool(view.playing), rate=rate if view.playing else 0.0)
        return frame

    def refresh_inspector_options(self):
        """List the messages in flight of the last frame in the inspector
        (done on every paused redraw; while playing the list is left alone
        so an open dropdown does not jump)."""
        with self._render_lock:
            view = self._last_view
            if view is not None:
                with self._sync():
                    self._sync_inspector_options(view)
                    self.inspector_html.value = self._inspect_html(view, self.inspector.value)

    def _sync_slider(self, view):
        s = self.time_slider
        top = max(view.furthest, view.now)
        if top >= s.max:
            s.max = top
            s.value = view.now
        else:
            s.value = view.now
            s.max = top

    def _sync_knobs(self, view):
        net = view.net
        if net is None:
            return
        try:
            self.drop.value = min(0.5, max(float(net.request_drop), float(net.reply_drop)))
            self.delay.value = min(0.2, float(net.delay[1]))
            self.duplicate.value = min(0.5, float(net.duplicate))
            self.reorder.value = bool(net.long_reordering)
        except (AttributeError, TypeError, ValueError, IndexError):
            pass

    def _sync_inspector_options(self, view):
        if view.state is None:
            return
        options = [(f"node {n.id}", f"node:{n.id}") for n in view.state.nodes]
        for m in sorted(view.state.messages, key=lambda m: m.id):
            src, dst = (m.src, m.dst) if m.phase == "request" else (m.dst, m.src)
            name = _fields(m.summary)[0]
            options.append((f"msg {m.id}: {name}{' reply' if m.phase != 'request' else ''} {src}\u2192{dst}",
                            f"msg:{m.id}"))
        selected = self.inspector.value
        if selected not in {v for _, v in options} and selected is not None and selected.startswith("msg:"):
            options.append((f"msg {selected[4:]} (no longer in flight)", selected))
        if tuple(options) != tuple(self.inspector.options):
            self.inspector.options = options
            values = [v for _, v in options]
            self.inspector.value = selected if selected in values else values[0]

    def _badge_html(self, view):
        e = view.failure
        if e is None:
            return f'<span style="{_OK_STYLE}">\u2714 safe</span>'
        if isinstance(e, SafetyViolation):
            head = f"\u2718 UNSAFE: {e.invariant}"
            body = str(e)
            where = "" if e.event is None else f"after event: {e.event}"
        else:
            head, body, where = f"\u2718 {type(e).__name__}", str(e), ""
        esc = html.escape
        first = body.splitlines()[0] if body else ""
        return (f'<span style="{_BAD_STYLE}">{esc(head)}</span> '
                f'<span style="color:#d62728">{esc(first[:200])}</span>'
                + (f'<br><code style="color:#d62728">{esc(where)}</code>' if where else "")
                + (f'<details><summary>details</summary><pre style="{_PRE}">{esc(body)}</pre></details>'
                   if len(body.splitlines()) > 2 else ""))

    @staticmethod
    def _events_html(view):
        lines = "\n".join(str(e) for e in view.events) or "(no events yet)"
        return (f'<div style="font-size:12px;color:#555">last {EVENTS_SHOWN} events</div>'
                f'<pre style="{_WRAP}">{html.escape(lines, quote=False)}</pre>')

    @staticmethod
    def _inspect_html(view, key):
        state = view.state
        if state is None or not isinstance(key, str):
            return ""
        kind, _, ident = key.partition(":")
        try:
            ident = int(ident)
        except ValueError:
            return ""
        if kind == "node":
            if not 0 <= ident < len(state.nodes):
                return ""
            n = state.nodes[ident]
            log_length = n.last_included_index + len(n.log_terms)
            terms = ", ".join(map(str, n.log_terms[-20:]))
            rows = [
                ("state", n.state if n.alive else f"crashed (was {n.state})"),
                ("alive / connected", f"{n.alive} / {n.connected}"),
                ("current_term", n.term),
                ("voted_for", "None" if n.voted_for is None else n.voted_for),
                ("commit_index", n.commit_index),
                ("last_applied", n.last_applied),
                ("log length", log_length),
                ("snapshot up to", n.last_included_index),
                ("log terms" + (" (last 20)" if len(n.log_terms) > 20 else ""), f"[{terms}]"),
                ("election timer", f"reset at {n.timer_started:.4f}s, timeout {n.timer_timeout:.4f}s"
                                   f" (fires at {n.timer_started + n.timer_timeout:.4f}s)"),
            ]
            nxt, match = dict(n.next_index), dict(n.match_index)
            peers = sorted(set(nxt) | set(match))
            peer_rows = [(p, nxt.get(p, "-"), match.get(p, "-")) for p in peers]
            return (f"<b>node {n.id}</b> at t={state.time:.4f}s" + _table(rows)
                    + ("<div style='font-size:12px'>leader's view of each peer"
                       + (" (meaningful while leader)" if n.state != "Leader" else "") + "</div>"
                       + _table(peer_rows, ("peer", "next_index", "match_index")) if peers else ""))
        if kind == "msg":
            m = next((m for m in state.messages if m.id == ident), None)
            if m is None:
                return f"message {ident} is no longer in flight (delivered, answered or dropped)"
            request = m.phase == "request"
            src, dst = (m.src, m.dst) if request else (m.dst, m.src)
            name, pairs = _fields(m.summary)
            rows = [("method", m.method), ("phase", m.phase), ("from", src), ("to", dst),
                    ("sent", f"{m.sent:.4f}s"), ("arrives", f"{m.arrive:.4f}s")]
            out = f"<b>message {m.id}</b> at t={state.time:.4f}s" + _table(rows)
            out += (f"<div style='font-size:12px'>{html.escape(name)} (request)</div>"
                    + _table(pairs, ("field", "value")))
            if not request:
                rname, rpairs = _fields(m.reply)
                out += (f"<div style='font-size:12px'>{html.escape(rname)} (reply)</div>"
                        + _table(rpairs, ("field", "value")))
            return out
        return ""

    # --------------------------------------------------------------- misc
    @contextlib.contextmanager
    def _sync(self):
        """Mark trait changes made by this thread as the widget's own (the
        observers then do not treat them as user input)."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def _syncing(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def _note(self, message: str, error: bool = False):
        color = "#d62728" if error else "#333"
        try:
            self.status.value = f'<span style="color:{color};font-size:13px">{html.escape(message, quote=False)}</span>'
        except Exception:
            pass

    def _parts(self):
        out, todo = [], list(self.children)
        while todo:
            w = todo.pop()
            out.append(w)
            todo.extend(getattr(w, "children", ()))
        return out


def _log10(x):
    return math.log10(x)


def _default_partition(n):
    half = max(1, n // 2)
    return " ".join(map(str, range(half))) + " | " + " ".join(map(str, range(half, n)))


def show(cluster, **kw) -> ClusterWidget:
    """The live view of ``cluster`` (what ``Cluster.show()`` returns).
    ``kw``: ``fps``, ``rate``. In a notebook, make it the last expression of
    a cell (or ``display()`` it) to see it."""
    return ClusterWidget(cluster, **kw)
