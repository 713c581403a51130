"""What the virtual clock's pieces cost, separately from Raft.

* hand-off: two threads ping-pong through ``sleep``; wall time and context
  switches per scheduler event (one switch per hand-off is the floor);
* run_for step: what one ``run_for`` call costs the notebook, beyond the
  events it runs (an idle 5-node cluster, 20 simulated seconds in 20 ms
  steps against one 20 s step);
* long run: 80 simulated seconds of a loaded 5-node cluster (the log grows
  to 4,000 entries; a step that copies the log would slow down here).
"""

import gc
import resource
import time

import raftkit
from raftkit.clock import VirtualClock


def _usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw, r.ru_nivcsw


def handoff(sim_seconds: float = 20.0) -> dict:
    clock = VirtualClock()

    def ping(dt):
        while True:
            clock.sleep(dt)

    clock.go(ping, 0.001)
    clock.go(ping, 0.0015)
    (v0, i0), t0 = _usage(), time.perf_counter()
    events = clock.run(until=sim_seconds)
    wall, (v1, i1) = time.perf_counter() - t0, _usage()
    clock.stop()
    return {"us_per_event": wall / events * 1e6, "voluntary": (v1 - v0) / events,
            "involuntary": (i1 - i0) / events}


def run_for_step(sim_seconds: float = 20.0, step: float = 0.02) -> float:
    """Microseconds one run_for call adds."""
    walls = {}
    for dt in (step, sim_seconds):
        gc.collect()
        with raftkit.Cluster(5, seed=3) as c:
            c.check_one_leader()
            t0 = time.perf_counter()
            for _ in range(round(sim_seconds / dt)):
                c.run_for(dt)
            walls[dt] = time.perf_counter() - t0
    return (walls[step] - walls[sim_seconds]) / round(sim_seconds / step) * 1e6


def long_run(sim_seconds: float = 80.0) -> float:
    gc.collect()
    with raftkit.Cluster(5, seed=3) as c:
        c.check_one_leader()
        t0 = time.perf_counter()
        for k in range(round(sim_seconds * 50)):
            c.run_for(0.02)
            c.submit(k)
        return sim_seconds / (time.perf_counter() - t0)


def main():
    h = handoff()
    print(f"clock hand-off (two threads, ping-pong): {h['us_per_event']:.1f} us/event, "
          f"{h['voluntary']:.2f} voluntary + {h['involuntary']:.2f} involuntary context switches per event")
    print(f"one run_for step costs the notebook {run_for_step():.0f} us beyond its events (idle 5 nodes, 20 ms steps)")
    print(f"long run: 80 simulated s, 5 nodes, 50 cmd/s: {long_run():.1f}x real time (log grows to 4,000 entries)")


if __name__ == "__main__":
    main()
