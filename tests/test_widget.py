"""The live cluster view (ClusterWidget) and the %raft magic, headless.

Buttons are pressed with ``.click()`` and sliders moved by setting
``.value``, exactly what the frontend's messages do; every wait is bounded.
"""

import threading

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("matplotlib")
pytest.importorskip("networkx")

import ipywidgets

import raftkit
from raftkit import Config
from raftkit.viz.frames import positions
from raftkit.viz.liveview import LiveView
from raftkit.viz.widget import VISIBLE_STEP_SECONDS, ClusterWidget, parse_groups, show
from tests.broken import DoubleVoter

WAIT = 10.0  # wall seconds: upper bound of every wait


@pytest.fixture
def make():
    """make(n, fps=..., rate=..., **cluster_kw) -> (cluster, widget); all closed and stopped after."""
    made = []

    def _make(n=5, *, fps=8, rate=0.05, **kw):
        c = raftkit.Cluster(n, **kw)
        w = ClusterWidget(c, fps=fps, rate=rate)
        made.append((c, w))
        return c, w

    yield _make
    for c, w in made:
        w.close()
        w.cluster.stop()
        c.stop()


def play_threads():
    return [t for t in threading.enumerate() if t.name == "raftkit-widget-play" and t.is_alive()]


def wait_until_play_stops(w):
    """Waits (bounded) for the widget to stop playing on its own; its play
    thread must be gone then."""
    with w.frame_done:
        assert w.frame_done.wait_for(lambda: not w.play.value, WAIT)
    thread = w.play_thread
    if thread is not None:
        thread.join(WAIT)
    assert w.play_thread is None and not play_threads()


def canonical(cluster, until=None):
    return [e.canonical() for e in cluster.trace if until is None or e.time <= until]


def test_widget_builds_with_its_parts(make):
    """The parts a notebook or a browser test looks for exist and show the cluster."""
    c, w = make(5, seed=1)
    assert isinstance(w, ipywidgets.VBox)
    assert isinstance(w.view, LiveView) and w.view.frame["t"] == 0 and len(w.view.frame["nodes"]) == 5
    assert w.view.positions == [list(p) for p in positions(5)] and w.view.frame["playing"] is False
    assert w.state_text.value.startswith("<pre") and "Cluster(n=5, seed=1" in w.state_text.value
    assert "safe" in w.badge.value
    assert "no events yet" in w.events.value
    buttons = {b.description: b for b in (w.step_button, w.tick_button, w.crash_button, w.restart_button,
                                          w.disconnect_button, w.connect_button, w.partition_button,
                                          w.heal_button, w.submit_button, w.reset_button)}
    assert set(buttons) == {"Step", "Tick", "Crash", "Restart", "Disconnect", "Connect", "Partition", "Heal",
                            "Submit", "Reset"}
    assert all(isinstance(b, ipywidgets.Button) for b in buttons.values())
    assert isinstance(w.play, ipywidgets.ToggleButton) and w.play.description == "Play"
    assert isinstance(w.speed, ipywidgets.FloatLogSlider) and w.speed.value == pytest.approx(0.05)
    assert isinstance(w.time_slider, ipywidgets.FloatSlider) and w.time_slider.max == 0
    assert [v for _, v in w.node_picker.options] == [0, 1, 2, 3, 4]
    assert isinstance(w.reorder, ipywidgets.Checkbox) and isinstance(w.seed, ipywidgets.IntText)
    assert (w.drop.max, w.delay.max, w.duplicate.max) == (0.5, 0.2, 0.5)
    assert [v for _, v in w.inspector.options][:5] == [f"node:{i}" for i in range(5)]
    assert "current_term" in w.inspector_html.value
    assert w.cluster is c and w.play_thread is None and not play_threads()
    assert repr(w) == "ClusterWidget(n=5, seed=1, clock=virtual)"
    assert isinstance(show(c), ClusterWidget)  # what Cluster.show() returns


def test_tick_button_runs_one_event_and_redraws(make):
    """Each Tick press runs exactly one scheduler event; the picture and the
    state table follow."""
    c, w = make(5, seed=1)
    w.advance(0.3)
    frame, text = w.view.frame, w.state_text.value
    for _ in range(30):
        before = c.clock.events
        w.tick_button.click()
        assert c.clock.events == before + 1
        if w.state_text.value != text:
            break
    assert w.state_text.value != text and w.view.frame["t"] > frame["t"]
    assert w.view.frame["seq"] > frame["seq"]
    assert "tick:" in w.status.value
    assert "<pre" in w.events.value and "send" in w.events.value


def test_step_button_runs_to_the_next_visible_event(make):
    """Step skips the timers' invisible ticks: every press ends on an event
    the picture shows, and the trace grows by at least one event each time.
    From a quiet start (every follower waiting), one Step gets to the first
    election timeout, which ten Ticks do not."""
    c, w = make(5, seed=1)
    for _ in range(10):
        w.tick_button.click()
    assert not c.trace  # ten ticks: nothing to see yet
    w.step_button.click()
    assert c.trace and c.trace[0].kind == "timeout"  # and what that one event did (becoming candidate)
    assert "step:" in w.status.value and "timeout" in w.status.value
    for _ in range(20):
        n = len(c.trace)
        w.step_button.click()
        assert len(c.trace) > n
        assert "step:" in w.status.value and "tick" not in w.status.value


def test_visible_step_is_bounded_and_says_when_nothing_happens(make):
    """A cluster of one leader with nothing to do still heartbeats... so a
    single node (no peers: no messages) is the quiet case: Step stops after
    VISIBLE_STEP_SECONDS of cluster time and says nothing visible happened."""
    c, w = make(1, seed=1)
    w.advance(1.0)
    assert c.leader() == 0
    before = c.now
    w.step_button.click()
    assert "nothing visible happened" in w.status.value
    assert before + VISIBLE_STEP_SECONDS <= c.now < before + VISIBLE_STEP_SECONDS + 0.1


def test_node_buttons_reach_the_cluster(make):
    """Crash / Restart / Disconnect / Connect act on the picked node; a crash
    shows in the picture and the state table."""
    c, w = make(5, seed=1)
    w.advance(0.5)
    w.node_picker.value = 2
    w.crash_button.click()
    assert not c.is_alive(2)
    assert w.view.frame["nodes"][2]["role"] == "Dead" and w.view.frame["nodes"][2]["alive"] is False
    assert "crashed" in w.state_text.value
    w.restart_button.click()
    assert c.is_alive(2)
    w.disconnect_button.click()
    assert not c.is_connected(2) and "down" in w.state_text.value
    w.connect_button.click()
    assert c.is_connected(2)
    assert [e.kind for e in c.trace if e.node == 2 and e.kind in ("crash", "restart", "connect", "disconnect")] \
        == ["crash", "restart", "disconnect", "connect"]


def test_partition_heal_submit_and_network_knobs(make):
    """The partition box, Heal, Submit and the network sliders all reach the cluster."""
    c, w = make(5, seed=1)
    w.advance(1.0)
    w.partition_text.value = "0 1 | 2 3 4"
    w.partition_button.click()
    assert c.snapshot_state().partition == ((0, 1), (2, 3, 4))
    assert c.trace[-1].kind == "partition"
    w.heal_button.click()
    assert c.snapshot_state().partition is None and c.trace[-1].kind == "heal"

    n = len(c.trace)
    w.partition_text.value = "0 x | 2"
    w.partition_button.click()
    assert len(c.trace) == n and "0 1 | 2 3 4" in w.status.value  # bad input: a message, no action

    leader = c.leader()
    assert leader is not None
    w.command_text.value = "x=1"
    w.submit_button.click()
    assert ("submit", leader, "'x=1'") in [(e.kind, e.node, e.detail) for e in c.trace[n:]]
    assert "submitted 'x=1'" in w.status.value
    w.advance(0.5)
    assert [m.command for m in c.applied(leader) if m.command_valid] == ["x=1"]

    w.drop.value = 0.2
    assert c.trace[-1].kind == "network" and "request_drop=0.2" in c.trace[-1].detail
    assert (c.bus.net.request_drop, c.bus.net.reply_drop) == (0.2, 0.2)
    w.delay.value = 0.05
    assert c.bus.net.delay == (0.0, 0.05)
    w.duplicate.value = 0.3
    assert c.bus.net.duplicate == 0.3
    w.reorder.value = True
    assert c.bus.net.long_reordering is True
    assert [e.kind for e in c.trace[-4:]] == ["network"] * 4


def test_inspector_shows_nodes_and_messages_in_flight(make):
    """The inspector lists the messages in flight with all their RPC fields."""
    c, w = make(5, seed=1)
    w.advance(0.5)
    for _ in range(200):  # step until a message is on the wire
        if c.snapshot_state().messages:
            break
        w.step(1)
    msgs = c.snapshot_state().messages
    assert msgs
    keys = [v for _, v in w.inspector.options]
    assert f"msg:{msgs[0].id}" in keys
    w.inspector.value = f"msg:{msgs[0].id}"
    html = w.inspector_html.value
    assert "term" in html and "sent" in html and "arrives" in html
    w.inspector.value = f"node:{c.leader()}"
    assert "Leader" in w.inspector_html.value and "next_index" in w.inspector_html.value


def test_play_runs_frames_then_pause_and_close_end_the_thread(make):
    """Play runs frames on one background thread; clicks made meanwhile are
    applied between frames; Pause and close() end the thread."""
    c, w = make(5, seed=1, fps=20, rate=0.05)
    w.play.value = True
    assert w.play.description == "Pause"
    assert w.wait_for_frames(3, WAIT)
    assert len(play_threads()) == 1
    w.node_picker.value = 0
    w.crash_button.click()  # returns at once; the play thread applies it
    assert w.wait_for_frames(w.frame_count + 2, WAIT)
    w.play.value = False
    assert w.play.description == "Play"
    assert w.play_thread is None and not play_threads()
    assert not c.is_alive(0)
    assert c.now >= 3 * 0.05 and w.view.frame["t"] == c.now and w.view.frame["playing"] is False
    assert w.time_slider.value == pytest.approx(c.now) and w.time_slider.max == pytest.approx(c.now)

    w.play.value = True
    assert w.wait_for_frames(w.frame_count + 2, WAIT)
    w.close()
    assert not play_threads()


def scripted(w):
    """Steps, runs and user actions, all through the widget."""
    w.step(30)
    w.advance(1.0)
    w.node_picker.value = 1
    w.crash_button.click()
    w.partition_text.value = "0 1 | 2 3 4"
    w.partition_button.click()
    w.advance(0.5)
    w.heal_button.click()
    w.restart_button.click()
    w.command_text.value = "y"
    w.submit_button.click()
    w.drop.value = 0.1
    w.advance(0.6)


def test_time_slider_rewinds_and_replays_the_same_run(make):
    """Dragging back re-runs the seed and the recorded actions up to that
    time; forward again gives the very same run (same trace digest)."""
    c, w = make(5, seed=2)
    scripted(w)
    digest, end = c.trace_digest(), c.now
    assert w.time_slider.max == pytest.approx(end)

    w.time_slider.value = end / 2
    assert w.wait_idle(WAIT)
    past = w.cluster
    assert past is not c and past.now == pytest.approx(end / 2)
    assert canonical(past) == canonical(c, until=past.now)
    assert w.time_slider.max == pytest.approx(end)  # the future is still there
    assert w.time_slider.value == pytest.approx(end / 2)

    w.time_slider.value = 0.75 * end  # forward, still short of the end: re-run
    assert w.wait_idle(WAIT)
    assert canonical(w.cluster) == canonical(c, until=w.cluster.now)

    w.time_slider.value = w.time_slider.max  # forward to the furthest time
    assert w.wait_idle(WAIT)
    assert w.cluster.trace_digest() == digest and w.cluster.now == end

    w.rewind(0.2)  # what the slider calls; then play on through the recorded future
    w.advance(end + 0.5)
    assert canonical(w.cluster, until=end) == canonical(c)
    assert w.furthest is w.cluster and w.time_slider.max == pytest.approx(0.2 + end + 0.5)


def test_an_action_after_rewind_forks_history(make):
    """Acting on a rewound cluster drops the old future: a different run."""
    c, w = make(5, seed=2)
    scripted(w)
    digest, end = c.trace_digest(), c.now
    w.rewind(end / 2)
    w.node_picker.value = 3
    w.crash_button.click()
    assert w.furthest is w.cluster and w.time_slider.max == pytest.approx(end / 2)
    w.advance(end / 2)
    assert w.cluster.now == pytest.approx(end)
    assert w.cluster.trace_digest() != digest
    assert any(e.kind == "crash" and e.node == 3 for e in w.cluster.trace)


def test_calls_from_a_cell_take_turns_with_play_and_stop_ends_it(make):
    """While the widget plays, calls from the notebook (another thread) run
    between frames; stopping the cluster from a cell ends play with a note."""
    c, w = make(3, seed=1, fps=20, rate=0.05)
    w.play.value = True
    assert w.wait_for_frames(2, WAIT)
    for k in range(50):
        c.submit(k)
        c.run_for(0.01)
    assert w.wait_for_frames(w.frame_count + 2, WAIT)
    c.stop()
    wait_until_play_stops(w)
    assert "the cluster was stopped" in w.status.value


def test_safety_violation_turns_the_badge_red_and_stops_play(make):
    """A node that votes twice elects two leaders in a term: the play thread
    stops, the badge names the invariant; rewinding before it is safe again."""
    c, w = make(3, seed=1, fps=20, rate=0.1, config=Config(election_timeout=(0.15, 0.15)),
                node_class=DoubleVoter)
    w.play.value = True
    wait_until_play_stops(w)
    assert w.play.description == "Play"
    assert "Election Safety" in w.badge.value and "after event" in w.badge.value
    assert "\u2714 safe" not in w.badge.value

    w.step_button.click()  # the broken cluster stays broken, nothing raises here
    assert "Election Safety" in w.badge.value

    w.rewind(0.1)  # before the violation
    assert "\u2714 safe" in w.badge.value
    w.rewind(w.time_slider.max)
    assert "Election Safety" in w.badge.value


def test_reset_makes_a_new_cluster_with_the_seed(make):
    """Reset: same size and options, the seed from the box, time back to 0."""
    c, w = make(3, seed=1)
    w.advance(1.0)
    w.seed.value = 7
    w.reset_button.click()
    assert w.cluster is not c and w.cluster.seed == 7 and w.cluster.n == 3 and w.cluster.now == 0
    assert w.time_slider.max == 0 and w.time_slider.value == 0
    assert c.is_alive(0)  # the user's cluster is theirs: not stopped


def test_real_clock_view_only_redraws(make):
    """A real-clock cluster runs by itself: Play only redraws; Step and the
    timeline are disabled."""
    c, w = make(3, seed=1, clock="real", fps=20)
    assert w.step_button.disabled and w.time_slider.disabled
    w.play.value = True
    assert w.wait_for_frames(2, WAIT)
    w.play.value = False
    assert not play_threads()


def test_parse_groups():
    assert parse_groups("0 1 | 2 3 4") == [[0, 1], [2, 3, 4]]
    assert parse_groups("0,1|2") == [[0, 1], [2]]
    with pytest.raises(ValueError):
        parse_groups("a | b")
    with pytest.raises(ValueError):
        parse_groups(" | ")


def test_raft_magic(capsys):
    """%raft drives the `cluster` of the user namespace; bad input prints one line."""
    from IPython.core.interactiveshell import InteractiveShell

    import raftkit.magic
    ip = InteractiveShell.instance()
    raftkit.magic.load_ipython_extension(ip)
    magic = ip.find_line_magic("raft")
    assert "%raft demo" in magic.__doc__ and "%raft partition" in magic.__doc__
    raft = lambda line: ip.run_line_magic("raft", line)  # noqa: E731
    try:
        raft("demo 3")
        c = ip.user_ns["cluster"]
        assert isinstance(c, raftkit.Cluster) and c.n == 3
        assert "ClusterWidget(n=3" in capsys.readouterr().out
        raft("step 2")
        assert len(capsys.readouterr().out.strip().splitlines()) == 2 and c.clock.events == 2
        raft("run 1")
        assert capsys.readouterr().out.startswith("t=1.000s, leader ")
        raft("state")
        assert capsys.readouterr().out.strip() == repr(c)
        raft("crash 0")
        assert not c.is_alive(0)
        raft("restart 0")
        assert c.is_alive(0)
        raft("partition 0 | 1 2")
        assert c.snapshot_state().partition == ((0,), (1, 2))
        raft("heal")
        assert c.snapshot_state().partition is None
        raft("run 1")
        raft("submit hello")
        assert "submitted 'hello'" in capsys.readouterr().out.splitlines()[-1]
        widget = magic.magic.widget
        assert widget.cluster is c and "hello" in widget.events.value
        for bad in ("", "bogus", "crash nine", "crash 7", "step -1", "run soon", "partition x", "demo 99"):
            raft(bad)
            out = capsys.readouterr().out.strip()
            assert len(out.splitlines()) == 1 and "Traceback" not in out, (bad, out)
        raft("show")
        assert "ClusterWidget(n=3" in capsys.readouterr().out
        c.stop()
        raft("step")  # a stopped cluster: one line, no traceback
        assert "stopped" in capsys.readouterr().out
    finally:
        magic.magic.close()
    assert not play_threads()


# ------------------------------------------------------------ state frames
def test_state_frame_is_json_and_shows_what_the_state_holds():
    """The frame the browser draws: JSON as it is, one entry per node, one
    per message in flight (with the way it travels), the leader, cut links."""
    import json

    from raftkit.viz.frames import state_frame
    with raftkit.Cluster(5, seed=1) as c:
        c.run_for(1.0)
        c.submit("x")
        c.run_for(0.06)
        while not c.snapshot_state().messages:
            c.step()
        c.crash(3)
        c.partition([0, 1, 2], [4])
        state = c.snapshot_state()
    f = state_frame(state)
    assert json.loads(json.dumps(f)) == f
    assert f["t"] == state.time and f["leader"] == 0 and f["partition"] == [[0, 1, 2], [4]]
    assert [n["id"] for n in f["nodes"]] == [0, 1, 2, 3, 4]
    assert f["nodes"][0]["role"] == "Leader" and f["nodes"][0]["timer"] is None
    assert f["nodes"][3]["role"] == "Dead" and f["nodes"][3]["timer"] is None
    follower = f["nodes"][1]
    ns = state.nodes[1]
    assert follower["timer"] == [ns.timer_started, ns.timer_timeout, True]
    # node 4 is alone in its group, node 3 is in no group: every link of theirs is cut
    assert sorted(map(tuple, f["cut"])) == sorted({(a, b) for a in range(5) for b in range(a + 1, 5)
                                                   if {a, b} & {3, 4}})
    assert len(f["messages"]) == len(state.messages) > 0
    for m, sm in zip(f["messages"], sorted(state.messages, key=lambda m: m.id)):
        assert m["id"] == sm.id and (m["sent"], m["arrive"]) == (sm.sent, sm.arrive)
        way = (sm.src, sm.dst) if sm.phase == "request" else (sm.dst, sm.src)
        assert (m["src"], m["dst"]) == way and m["key"] == f"{sm.id}{'q' if sm.phase == 'request' else 'r'}"
        assert m["doomed"] == (3 in way or 4 in way)
    leader_log = f["logs"][0]
    assert leader_log["terms"] == [1] and leader_log["first"] == 1
    assert all("next" in f["logs"][j] for j in (1, 2, 3, 4)) and "next" not in leader_log


def test_state_frame_for_a_students_timer_and_long_logs():
    """A node that did not record its timeout gets the top of the configured
    range, marked inexact; a long log sends only its last `window` entries."""
    from dataclasses import replace

    from raftkit.viz.frames import state_frame
    with raftkit.Cluster(3, seed=2) as c:
        for k in range(30):
            c.one(k, 3)
        state = c.snapshot_state()
    follower = next(ns for ns in state.nodes if ns.state == "Follower")
    student = replace(follower, timer_timeout=0.0)
    nodes = tuple(student if ns.id == follower.id else ns for ns in state.nodes)
    f = state_frame(replace(state, nodes=nodes), election_timeout=(0.2, 0.4), window=10)
    assert f["nodes"][follower.id]["timer"] == [follower.timer_started, 0.4, False]
    assert all(row["first"] == 21 and len(row["terms"]) == 10 for row in f["logs"])
    with pytest.raises(TypeError):
        state_frame("not a state")
    with pytest.raises(ValueError):
        state_frame(state, window=0)


def test_node_table_link_column_says_crashed_cut_and_partitioned():
    """The table's link column: up, down (disconnected), group k, - (crashed)."""
    from raftkit.viz.frames import node_table
    with raftkit.Cluster(5, seed=1) as c:
        c.run_for(1.0)
        c.crash(1)
        c.disconnect(2)
        c.partition([0, 1, 2], [3])
        table = node_table(c.snapshot_state(), head="HEAD")
    lines = table.splitlines()
    assert lines[0] == "HEAD" and lines[1].split()[-1] == "link"
    links = [line.split()[-1] if not line.endswith(("group 0", "group 1")) else line[-7:] for line in lines[2:]]
    assert links == ["group 0", "-", "down", "group 1", "isolated"]
    assert lines[3].split()[1] == "crashed"


# ------------------------------------------------- clicks on the picture
def send(w, **content):
    """What liveview.js's model.send does: a message on the kernel's thread."""
    w.view._receive(w.view, content, [])


def test_clicks_on_a_node_reach_the_cluster(make):
    """The node menu's actions, sent as the browser sends them."""
    c, w = make(5, seed=1)
    w.advance(1.0)
    leader = c.leader()
    follower = (leader + 1) % 5
    send(w, action="crash", node=2)
    assert not c.is_alive(2) and "node 2 crashed" in w.status.value
    assert w.view.frame["nodes"][2]["role"] == "Dead"
    send(w, action="restart", node=2)
    assert c.is_alive(2)
    send(w, action="disconnect", node=3)
    assert not c.is_connected(3) and w.view.frame["nodes"][3]["connected"] is False
    send(w, action="connect", node=3)
    assert c.is_connected(3)
    term = c.get_state(follower)[0]
    send(w, action="timeout", node=follower)
    assert "timed out" in w.status.value and c.trace[-1].kind == "timeout_now"
    w.advance(c.config.ticker_interval + 0.001)
    assert c.get_state(follower)[0] == term + 1
    send(w, action="timeout", node=c.leader())  # a leader has no timer: a message, no action
    assert "only followers and candidates" in w.status.value
    assert [e.node for e in c.trace if e.kind in ("crash", "restart", "disconnect", "connect")] == [2, 2, 3, 3]


def test_submit_to_a_clicked_node_on_both_sides_of_a_partition(make):
    """The tour's experiment from the picture: partition, then submit to the
    old leader (minority) and to the new one (majority)."""
    c, w = make(5, seed=1)
    w.advance(1.0)
    old = c.leader()
    rest = [i for i in range(5) if i != old]
    w.partition_text.value = f"{old} {rest[0]} | {' '.join(map(str, rest[1:]))}"
    w.partition_button.click()
    w.advance(1.0)
    new = next(i for i in rest[1:] if c.get_state(i)[1])
    w.command_text.value = "left"
    send(w, action="submit", node=old)
    assert f"to node {old}" in w.status.value
    w.command_text.value = "right"
    send(w, action="submit", node=new)
    assert f"to node {new}" in w.status.value
    send(w, action="submit", node=rest[0])  # a follower: not accepted, said so
    assert f"node {rest[0]} is not a leader" in w.status.value
    submits = [(e.node, e.detail) for e in c.trace if e.kind == "submit"]
    assert submits[-3:] == [(old, "'left'"), (new, "'right'"), (rest[0], "'right'")]
    w.advance(0.5)
    assert [m.command for m in c.applied(new) if m.command_valid] == ["right"]
    assert not [m for m in c.applied(old) if m.command_valid]


def test_click_on_a_message_drops_it(make):
    """A click on a dot drops that message; a click on one already gone says so."""
    c, w = make(5, seed=1)
    w.advance(1.0)
    while not w.view.frame["messages"]:
        w.step()
    m = w.view.frame["messages"][0]
    send(w, action="drop", message=m["id"])
    assert f"message {m['id']} dropped" in w.status.value
    assert m["id"] not in [x["id"] for x in w.view.frame["messages"]]
    assert c.trace[-1].kind == "drop"
    send(w, action="drop", message=m["id"])
    assert "no message" in w.status.value and "in flight" in w.status.value


def test_keys_play_pause_and_step(make):
    """Space toggles play; the right arrow steps to a visible event; shift +
    right arrow ticks."""
    c, w = make(5, seed=1, fps=20)
    send(w, action="step")
    assert "step:" in w.status.value and c.trace
    before = c.clock.events
    send(w, action="tick")
    assert c.clock.events == before + 1 and "tick:" in w.status.value
    send(w, action="play")
    assert w.play.value and w.wait_for_frames(2, WAIT)
    send(w, action="play")
    assert not w.play.value and w.play_thread is None
    assert w.view.frame["playing"] is False and w.view.frame["rate"] == 0.0
    assert "paused at t=" in w.status.value


@pytest.mark.parametrize("content, message", [
    ({"action": "crash", "node": 5}, "node must be an id in 0..4"),
    ({"action": "crash", "node": "1"}, "node must be an id"),
    ({"action": "crash", "node": True}, "node must be an id"),
    ({"action": "crash"}, "node must be an id"),
    ({"action": "drop", "message": -1}, "message id"),
    ({"action": "drop", "message": 2.5}, "message id"),
    ({"action": "explode", "node": 1}, "unknown live-view action 'explode'"),
    ({}, "unknown live-view action None"),
    (["crash", 1], "is a dict"),
])
def test_bad_messages_from_the_browser_are_refused_with_a_note(make, content, message):
    """Hostile or garbled messages change nothing and say what was wrong."""
    c, w = make(5, seed=1)
    w.advance(0.5)
    digest = c.trace_digest()
    w.view._receive(w.view, content, [])
    assert message in w.status.value and "#d62728" in w.status.value
    assert c.trace_digest() == digest and all(c.is_alive(i) for i in range(5))


def test_playing_frames_carry_the_rate_and_the_browser_can_interpolate(make):
    """While playing, frames say how fast cluster time runs (sim s per wall s
    = speed x fps) and time only goes forward between them."""
    c, w = make(3, seed=1, fps=20, rate=0.01)
    seen = []
    w.view.observe(lambda change: seen.append(change["new"]), "frame")
    w.play.value = True
    assert w.wait_for_frames(5, WAIT)
    w.play.value = False
    playing = [f for f in seen if f["playing"]]
    assert len(playing) >= 4
    assert all(f["rate"] == pytest.approx(0.01 * 20) for f in playing)
    times = [f["t"] for f in playing]
    assert times == sorted(times) and times[-1] > times[0]
    assert [f["seq"] for f in seen] == sorted(f["seq"] for f in seen)
    assert seen[-1]["playing"] is False


def test_drag_select_partitions(make):
    """A box dragged around some nodes: they and the others become two groups."""
    c, w = make(5, seed=1)
    w.advance(0.5)
    send(w, action="partition", groups=[[3, 1], [0, 2, 4]])
    assert c.snapshot_state().partition == ((1, 3), (0, 2, 4))
    assert w.partition_text.value == "1 3 | 0 2 4" and "partitioned: 1 3 | 0 2 4" in w.status.value
    assert w.view.frame["partition"] == [[1, 3], [0, 2, 4]]
    n = len(c.trace)
    for bad in ([[1, 1], [2]], [[7]], [], [[]], "0 1 | 2", [[0, "1"]], [[True]]):
        send(w, action="partition", groups=bad)
        assert "partition:" in w.status.value and "#d62728" in w.status.value, bad
    assert len(c.trace) == n


def test_clicks_on_a_rewound_picture_fork_history_and_replay(make):
    """Dropping a message and timing a node out on a rewound run fork it like
    any other action, and the forked run re-runs the same (rewind again)."""
    c, w = make(5, seed=2)
    w.advance(1.0)
    end = c.now
    w.rewind(0.5)
    while not w.view.frame["messages"]:
        w.step()
    m = w.view.frame["messages"][0]
    send(w, action="drop", message=m["id"])
    assert f"message {m['id']} dropped" in w.status.value
    follower = next(n["id"] for n in w.view.frame["nodes"] if n["role"] == "Follower")
    send(w, action="timeout", node=follower)
    assert w.furthest is w.cluster and w.cluster is not c
    w.advance(end - w.cluster.now + 0.2)
    forked, digest = w.cluster, w.cluster.trace_digest()
    assert [a.method for a in forked.actions][-2:] == ["drop_message", "timeout_now"]
    w.rewind(0.6)
    w.rewind(w.time_slider.max)
    assert w.cluster.trace_digest() == digest
    w.rewind(0.6)
    w.advance(forked.now - 0.6)  # play the recorded future through both clicks
    assert w.cluster.trace_digest() == digest


def test_status_line_follows_play_after_a_rewind(make):
    """After a rewind the status says so; Play replaces it (the issue's
    'rewound' that stayed), Pause says where it stopped."""
    c, w = make(5, seed=1, fps=20, rate=0.01)
    w.advance(1.0)
    w.rewind(0.5)
    assert "rewound" in w.status.value
    w.play.value = True
    assert "rewound" not in w.status.value and "playing the recorded run again" in w.status.value
    assert w.wait_for_frames(2, WAIT)
    w.play.value = False
    assert "rewound" not in w.status.value and "paused at t=" in w.status.value
