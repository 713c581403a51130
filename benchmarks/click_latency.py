"""Click-to-redraw latency of the live view: from a button click (Step,
Crash) to the new state frame being in the picture's ``frame`` trait
(headless: the click handler itself; the browser adds its transfer and its
SVG drawing). Target: < 150 ms."""

import statistics
import time

import raftkit
from raftkit.viz.widget import ClusterWidget


def main(clicks=20):
    with raftkit.Cluster(5, seed=1) as c:
        c.run_for(1.0)
        w = ClusterWidget(c)
        samples, redrawn = [], 0
        for k in range(clicks):
            before = w.view.frame
            t0 = time.perf_counter()
            if k % 5 == 4:
                w.node_picker.value = k % 5
                w.restart_button.click() if not c.is_alive(k % 5) else w.crash_button.click()
            else:
                w.step_button.click()
            samples.append(time.perf_counter() - t0)
            redrawn += w.view.frame != before  # the handler returns once the new frame is in place
        w.close()
    samples.sort()

    p50, worst = 1000 * statistics.median(samples), 1000 * samples[-1]
    print(f"widget click-to-redraw: median {p50:.0f} ms, worst {worst:.0f} ms over {clicks} clicks, "
          f"{redrawn} redrawn (target < 150 ms)")
    return p50, worst


if __name__ == "__main__":
    main()
