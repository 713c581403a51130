"""What playing the live view costs the kernel: CPU seconds per wall second
of Play for a 9-node cluster with messages in flight (extra network delay
keeps about 20 in the air), at the default frame rate and speed, headless
(state frames are built and the widget state serialized; no browser is
attached, so nothing is sent). The browser's side, its animation frame
rate, is measured by tests/test_browser.py. Target: < 0.5 CPU s per s."""

import time

import raftkit
from raftkit.viz.widget import ClusterWidget


def main(seconds=3.0):
    return [play(rate, seconds) for rate in (None, 0.05)]


def play(rate, seconds):
    """``rate``: sim seconds per frame (None: the widget's default)."""
    with raftkit.Cluster(9, seed=1) as c:
        c.check_one_leader()
        c.set_network(delay=(0.03, 0.06))
        for k in range(20):
            c.submit(k)
        c.run_for(0.2)
        w = ClusterWidget(c) if rate is None else ClusterWidget(c, rate=rate)
        in_flight = []
        w.view.observe(lambda change: in_flight.append(len(change["new"]["messages"])), "frame")
        cpu0, wall0, frames0 = time.process_time(), time.perf_counter(), w.frame_count
        w.play.value = True
        time.sleep(seconds)
        w.play.value = False
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        frames = w.frame_count - frames0
        w.close()
    mean = sum(in_flight) / max(1, len(in_flight))
    speed = "default speed" if rate is None else f"{rate} sim s/frame"
    print(f"live view play, 9 nodes, {speed}: {cpu / wall:.2f} CPU s per s, {frames / wall:.1f} frames/s, "
          f"{mean:.0f} messages in flight on average (target < 0.5)")
    return cpu / wall


if __name__ == "__main__":
    main()
