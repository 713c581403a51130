"""How fast a live widget can redraw the cluster: frames per second of
``render_png`` (ring + logs, 900x450 px) for 5 and 9 nodes with messages in
flight.

Builds a cluster, elects a leader, submits a few commands and steps a few
scheduler events so requests and replies are on the wire, takes one
``snapshot_state()`` and times N renders of it (the first render, which
builds the reusable figure, is left out). A second line times the whole
frame path a widget's render thread runs: ``snapshot_state()`` then
``render_png``. Targets: >= 10 fps for 5 nodes, >= 5 fps for 9 nodes.
"""

import time

import raftkit
from raftkit.viz.draw import render_png

RENDERS, SEED = 30, 1


def busy_cluster(n: int) -> raftkit.Cluster:
    """A cluster with a leader, a few log entries and messages in flight."""
    c = raftkit.Cluster(n, seed=SEED)
    c.run_for(1.0)
    leader = c.leader()
    for k in range(5):
        c.submit(f"cmd{k}", node=leader)
    c.run_for(0.1)
    for k in range(3):
        c.submit(f"late{k}", node=leader)
    for _ in range(n + 2):
        c.step()
    return c


def fps(n: int) -> tuple[float, float, int]:
    """(render-only fps, snapshot+render fps, messages in flight) for n nodes."""
    with busy_cluster(n) as c:
        state = c.snapshot_state()
        render_png(state)  # warm-up: builds this thread's figure
        t0 = time.perf_counter()
        for _ in range(RENDERS):
            render_png(state)
        render_only = RENDERS / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(RENDERS):
            render_png(c.snapshot_state())
        full = RENDERS / (time.perf_counter() - t0)
        return render_only, full, len(state.messages)


def main() -> dict:
    five, nine = fps(5), fps(9)
    print(f"render: 5 nodes {five[0]:.1f} fps, 9 nodes {nine[0]:.1f} fps (targets >= 10 and >= 5)"
          f"  [{five[2]} and {nine[2]} messages in flight, 900x450 px]")
    print(f"render with snapshot_state(): 5 nodes {five[1]:.1f} fps, 9 nodes {nine[1]:.1f} fps")
    return {"fps_5": five[0], "fps_9": nine[0], "frame_fps_5": five[1], "frame_fps_9": nine[1]}


if __name__ == "__main__":
    main()
