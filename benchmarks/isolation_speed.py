"""Virtual-clock speed of a 5-node cluster with every node in a process of
its own (``isolation="process"``), beside the same cluster in-process: a
client submits 50 commands per simulated second (a ``run_for`` step and a
``submit`` every 20 ms, as in virtual_speed.py). Prints simulated seconds per
wall second ("x real time") and the wall cost of one scheduler event; the
aim for the isolated cluster is >= 15x. Rounds alternate the two modes, so a
machine that slows down mid-run slows both."""

import statistics
import sys
import time

import raftkit

SIM_SECONDS = 5.0


def speed(isolation, seed=3) -> tuple[float, float]:
    with raftkit.Cluster(5, seed=seed, isolation=isolation) as c:
        c.check_one_leader()
        events0, t0 = c.clock.events, time.perf_counter()
        for k in range(int(SIM_SECONDS * 50)):
            c.run_for(1 / 50)
            c.submit(k)
        wall = time.perf_counter() - t0
        return SIM_SECONDS / wall, wall / (c.clock.events - events0) * 1e6


def main(rounds=3):
    rows = {None: [], "process": []}
    for r in range(rounds):
        for mode in rows:
            x, us = speed(mode)
            rows[mode].append((x, us))
            print(f"round {r + 1}: {'isolated' if mode else 'in-process':<10} {x:6.1f}x real time, "
                  f"{us:6.0f} us per event", flush=True)
    for mode, got in rows.items():
        print(f"median {'isolated' if mode else 'in-process':<10} {statistics.median(x for x, _ in got):6.1f}x "
              f"real time, {statistics.median(us for _, us in got):6.0f} us per event")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
