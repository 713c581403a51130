"""Static drawings (raftkit.viz.draw) and space-time diagrams / animations (raftkit.viz.timeline).

Each scenario builds a small virtual-clock cluster, breaks it (crash, partition),
submits commands and stops a few scheduler events later so messages are in
flight, then draws ``snapshot_state()``. The drawings expose what they drew
(``ax.raftkit_counts``, ``fig.raftkit_arrows``...) so the tests can check the
picture against the state, not just that nothing raised.
"""

import io
import queue
import threading

import pytest
from PIL import Image

import raftkit
from raftkit.viz.draw import cluster_graph, draw_cluster, draw_logs, figure, render_png, ring_positions
from raftkit.viz.timeline import KINDS, collect_frames, export_animation, match_messages, timeline

SIZES = [1, 3, 5, 9, 15]


def broken_cluster(n: int, seed: int = 1) -> raftkit.Cluster:
    """A cluster with a leader and a few entries; then (n >= 3) a crashed
    follower and (n >= 5) a partition keeping the leader in the majority; then
    fresh submits and a few events, so requests and replies are in flight."""
    c = raftkit.Cluster(n, seed=seed)
    c.run_for(1.0)
    leader = c.leader()
    assert leader is not None, f"no leader after 1 s (n={n}, seed={seed})"
    for k in range(3):
        c.submit(f"a{k}", node=leader)
    c.run_for(0.2)
    if n >= 3:
        c.crash((leader + 1) % n)
    if n >= 5:
        majority = [(leader + k) % n for k in range(n // 2 + 1)]
        c.partition(majority, [i for i in range(n) if i not in majority])
    for k in range(2):
        c.submit(f"b{k}", node=leader)
    for _ in range(n + 2):
        c.step()
    return c


@pytest.fixture(scope="module")
def clusters():
    built = {n: broken_cluster(n) for n in SIZES}
    yield built
    for c in built.values():
        c.stop()


def png_size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


# ---------------------------------------------------------------- figures

@pytest.mark.parametrize("n", SIZES)
def test_figure_has_the_ring_and_the_logs(clusters, n):
    """figure(): two axes, 'cluster' (every node, every link) and 'logs' (one
    row per node), and the time in the title."""
    c = clusters[n]
    state = c.snapshot_state()
    fig = figure(state)
    assert [ax.get_label() for ax in fig.axes] == ["cluster", "logs"]
    ring, logs = fig.axes
    assert ring.raftkit_counts["nodes"] == n
    assert ring.raftkit_counts["links"] == n * (n - 1) // 2
    assert logs.raftkit_counts["rows"] == n
    assert f"t = {state.time:.3f} s" in fig.texts[0].get_text()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    assert png.getvalue()[:4] == b"\x89PNG"


@pytest.mark.parametrize("n", SIZES)
def test_render_png_has_the_requested_size(clusters, n):
    """render_png(): PNG bytes of exactly the requested pixel size."""
    state = clusters[n].snapshot_state()
    for w, h in ((900, 450), (640, 333)):
        png = render_png(state, w, h)
        assert png[:4] == b"\x89PNG"
        assert png_size(png) == (w, h), f"n={n}: asked for {w}x{h}, got {png_size(png)}"


@pytest.mark.parametrize("n", [3, 5, 9, 15])
def test_what_is_drawn_matches_the_state(clusters, n):
    """Messages in flight, cut links, a crashed node, timers and log entries
    all appear in the drawing, as many as the state has."""
    state = clusters[n].snapshot_state()
    fig = figure(state)
    ring, logs = fig.axes
    counts = ring.raftkit_counts
    assert state.messages, f"n={n}: the scenario should leave messages in flight"
    assert counts["messages"] == len(state.messages)
    assert counts["replies"] == sum(m.phase == "reply" for m in state.messages)
    g = cluster_graph(state)
    assert counts["cut_links"] == sum(1 for e in g.edges if g.edges[e]["cut"])
    if n >= 5:
        assert counts["cut_links"] > 0
    assert any(not ns.alive for ns in state.nodes)
    live_timers = sum(1 for ns in state.nodes if ns.alive and ns.state in ("Follower", "Candidate")
                      and ns.timer_timeout > 0)
    assert counts["timers"] == live_timers
    entries = sum(len(ns.log_terms) for ns in state.nodes)
    assert logs.raftkit_counts["committed"] + logs.raftkit_counts["uncommitted"] == entries
    assert logs.raftkit_counts["uncommitted"] > 0      # the fresh submits
    assert logs.raftkit_counts["leader_markers"] == n - 1


def test_the_picture_changes_with_the_state_and_only_with_it(clusters):
    """Different PNG after a crash; the same state renders to the same bytes
    again (the reused figure keeps nothing from earlier frames)."""
    c = broken_cluster(5, seed=3)
    try:
        before = c.snapshot_state()
        png_before = render_png(before)
        c.crash(c.leader())
        after = c.snapshot_state()
        png_after = render_png(after)
        assert png_after != png_before
        assert render_png(before) == png_before
    finally:
        c.stop()


def test_redrawing_on_the_same_axes_replaces_the_drawing(clusters):
    """draw_cluster / draw_logs on user axes: calling again does not pile up artists."""
    from matplotlib.figure import Figure

    state = clusters[5].snapshot_state()
    fig = Figure()
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    draw_cluster(state, ax1)
    draw_logs(state, ax2)
    n1, n2 = len(ax1.get_children()), len(ax2.get_children())
    for _ in range(3):
        draw_cluster(state, ax1)
        draw_logs(state, ax2)
    assert (len(ax1.get_children()), len(ax2.get_children())) == (n1, n2)


def test_partitions_and_disconnects_cut_the_right_links():
    """Cut = the two ends cannot talk: different partition groups, or either
    end disconnected. Crashed nodes are grey, not cut."""
    with raftkit.Cluster(5, seed=2) as c:
        c.partition([0, 1], [2, 3, 4])
        g = cluster_graph(c.snapshot_state())
        assert {e for e in g.edges if g.edges[e]["cut"]} == {(a, b) for a in (0, 1) for b in (2, 3, 4)}
        c.heal()
        c.disconnect(3)
        c.crash(4)
        g = cluster_graph(c.snapshot_state())
        assert {e for e in g.edges if g.edges[e]["cut"]} == {(0, 3), (1, 3), (2, 3), (3, 4)}
        assert g.nodes[4]["role"] == "Dead" and g.edges[0, 4]["down"]


def test_ring_positions_start_at_the_top_and_run_clockwise():
    pos = ring_positions(4)
    assert pos[0] == pytest.approx((0.0, 1.0), abs=1e-6)
    assert pos[1] == pytest.approx((1.0, 0.0), abs=1e-6)
    assert ring_positions(1) == ((0.0, 0.0),)


def test_candidates_show_one_vote_dot_per_peer():
    """A disconnected follower times out and stands for election: its vote
    dots are drawn (n-1 of them), and none of the peers voted for it."""
    with raftkit.Cluster(5, seed=4) as c:
        c.run_for(1.0)
        loner = (c.leader() + 1) % 5
        c.disconnect(loner)
        assert c.run_until(lambda c: str(c.nodes[loner].state) == "Candidate", 2.0)
        state = c.snapshot_state()
        ax = figure(state).axes[0]
        assert ax.raftkit_counts["votes"] == 4 * sum(ns.state == "Candidate" for ns in state.nodes)
        assert not any(ns.voted_for == loner for ns in state.nodes if ns.id != loner)


def test_empty_logs_and_a_fresh_cluster_draw():
    with raftkit.Cluster(3, seed=1) as c:
        state = c.snapshot_state()
        fig = figure(state)
        assert fig.axes[1].raftkit_counts["window"] == (1, 10)
        assert png_size(render_png(state, 300, 150)) == (300, 150)


def test_long_logs_show_the_last_entries_and_snapshots_as_one_block():
    """45 entries with snapshots every 10: at most 20 indexes per row, the
    snapshot drawn as one block per node."""
    with raftkit.Cluster(3, seed=5, snapshot_interval=10) as c:
        for k in range(45):
            c.one(k, 3)
        c.run_for(0.3)
        state = c.snapshot_state()
        logs = figure(state).axes[1]
        lo, hi = logs.raftkit_counts["window"]
        assert (lo, hi) == (26, 45)
        assert logs.raftkit_counts["committed"] <= 3 * 20
        assert logs.raftkit_counts["snapshots"] == 3  # snapshot up to 40 reaches into the window


def test_render_png_rejects_bad_arguments(clusters):
    state = clusters[3].snapshot_state()
    with pytest.raises(ValueError):
        render_png(state, 10, 10)
    with pytest.raises(TypeError):
        render_png(clusters[3])


def test_rendering_on_a_thread_while_the_cluster_runs():
    """A render thread draws pictures while the main thread keeps stepping the
    cluster: every picture is a PNG, the cluster is unharmed."""
    with raftkit.Cluster(5, seed=6) as c:
        c.run_for(0.5)
        states, pngs, errors = queue.Queue(), [], []

        def render():
            while (s := states.get()) is not None:
                try:
                    pngs.append(render_png(s, 400, 200))
                except Exception as e:  # pragma: no cover - reported below
                    errors.append(e)

        t = threading.Thread(target=render)
        t.start()
        for _ in range(8):
            c.run_for(0.02)
            states.put(c.snapshot_state())
        states.put(None)
        t.join(30)
        assert not errors and len(pngs) == 8 and all(p[:4] == b"\x89PNG" for p in pngs)
        c.one("after", 5)


# ---------------------------------------------------------------- timeline

@pytest.mark.parametrize("n", SIZES)
def test_timeline_draws_every_node_and_its_messages(clusters, n):
    c = clusters[n]
    fig = timeline(c.trace)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"S{i}" for i in range(n)]
    if n > 1:
        assert fig.raftkit_arrows > 0
    assert any(e.kind == "state" and e.detail.startswith("leader") for e in fig.raftkit_marks)


def test_timeline_window_draws_only_what_happens_in_it(clusters):
    """With start/end: only arrows that overlap the window, only marks inside it."""
    c = clusters[5]
    full = timeline(c.trace)
    start, end = 0.4, 0.6
    part = timeline(c.trace, start=start, end=end)
    assert part.raftkit_window == (start, end)
    assert 0 < part.raftkit_arrows < full.raftkit_arrows
    assert all(a.t1 >= start and a.t0 <= end for a in part.raftkit_messages)
    assert all(start <= e.time <= end for e in part.raftkit_marks)
    expected = [a for a in full.raftkit_messages if a.t1 >= start and a.t0 <= end]
    assert part.raftkit_messages == expected


def test_timeline_filters_nodes_and_kinds(clusters):
    c = clusters[5]
    fig = timeline(c.trace, nodes=[0, 2])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["S0", "S2"]
    assert all({a.src, a.dst} <= {0, 2} for a in fig.raftkit_messages)
    only_states = timeline(c.trace, kinds={"state"})
    assert only_states.raftkit_arrows == 0
    assert {e.kind for e in only_states.raftkit_marks} == {"state"}
    with pytest.raises(ValueError, match="unknown event kind"):
        timeline(c.trace, kinds={"sned"})
    with pytest.raises(ValueError):
        timeline(c.trace, start=1.0, end=0.5)
    assert "send" in KINDS


def test_messages_are_matched_send_to_deliver_and_deliver_to_reply():
    """Reliable network: every delivery has its send, every reply its delivery."""
    with raftkit.Cluster(3, seed=7) as c:
        c.one("x", 3)
        arrows = match_messages(c.trace)
        kinds = [e.kind for e in c.trace]
        assert sum(a.leg == "request" for a in arrows) == kinds.count("deliver")
        assert sum(a.leg == "reply" for a in arrows) == kinds.count("reply")
        assert all(a.t1 >= a.t0 for a in arrows)


def test_lost_and_duplicated_messages_are_drawn():
    with raftkit.Cluster(3, seed=8) as c:
        c.run_for(0.5)
        c.set_network(request_drop=0.3, reply_drop=0.3, duplicate=0.3)
        c.run_for(1.0)
        legs = {a.leg for a in timeline(c.trace).raftkit_messages}
        assert {"request", "reply", "lost-request", "lost-reply", "duplicate"} <= legs


# ---------------------------------------------------------------- animation

def test_gif_export_has_several_frames(tmp_path):
    with raftkit.Cluster(3, seed=1) as c:
        c.run_for(0.5)
        out = export_animation(c, tmp_path / "run.gif", fps=5, seconds=1.0, step=0.01,
                               width_px=300, height_px=150)
    data = out.read_bytes()
    assert data[:4] == b"GIF8"
    img = Image.open(out)
    assert img.n_frames > 1 and img.size == (300, 150)


def test_html_export_from_frames(tmp_path):
    with raftkit.Cluster(3, seed=1) as c:
        frames = collect_frames(c, 0.3, fps=10)
    assert len(frames) == 3 and frames[1].time == pytest.approx(frames[0].time + 0.1)
    out = export_animation(frames, tmp_path / "run.html", fps=10, width_px=300, height_px=150)
    text = out.read_text()
    assert "<script" in text and text.count("data:image/png;base64") == len(frames)
    with pytest.raises(ValueError, match=".gif or .html"):
        export_animation(frames, tmp_path / "run.mp4")
