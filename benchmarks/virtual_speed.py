"""How many times faster than real time a 5-node cluster runs under the virtual clock.

Two loads: idle (elections settled, heartbeats only) and a client that
submits 50 commands per simulated second from the notebook's side (a
``run_for`` step and a ``submit`` every 20 ms). Prints simulated seconds per
wall second ("x real time"); the target is >= 50x for both.

This shared 2-core VM's speed drifts by up to 1.7x over minutes, so each
round also times a fixed pure-Python loop ("machine"): rounds where it is
slow show a slow machine, not slow code. Reported: every round, then the
median and best of the rounds.
"""

import gc
import statistics
import sys
import time

import raftkit

SIM_SECONDS = 20.0
ROUNDS = 5


def speed(load_per_second: int, seed: int = 3) -> dict:
    gc.collect()  # start clean: not timing the collection of earlier rounds' clusters or of imports
    with raftkit.Cluster(5, seed=seed) as c:
        c.check_one_leader()
        steps = int(SIM_SECONDS * 50)
        every = 0 if load_per_second == 0 else 50 // load_per_second
        events0, t0 = c.clock.events, time.perf_counter()
        for k in range(steps):
            c.run_for(1 / 50)
            if every and k % every == 0:
                c.submit(k)
        wall = time.perf_counter() - t0
        return {"load": f"{load_per_second} cmd/s", "x_real_time": SIM_SECONDS / wall,
                "events_per_sim_s": (c.clock.events - events0) / SIM_SECONDS,
                "us_per_event": wall / (c.clock.events - events0) * 1e6,
                "committed": c.nodes[c.leader()].commit_index}


def machine_ms() -> float:
    """Wall time of a fixed pure-Python loop (best of three): this machine's
    speed right now."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        times.append((time.perf_counter() - t0) * 1000)
    return min(times)


def main(rounds: int = ROUNDS):
    rows = {0: [], 50: []}
    for r in range(rounds):
        machine = machine_ms()
        for load in rows:
            row = speed(load)
            rows[load].append(row)
            print(f"  round {r + 1}: machine loop {machine:5.1f} ms  {row['load']:>9}: {row['x_real_time']:6.1f}x "
                  f"({row['events_per_sim_s']:.0f} events per simulated s, {row['us_per_event']:.1f} us/event, "
                  f"{row['committed']} committed)", flush=True)
    summary = []
    for load, runs in rows.items():
        xs = [run["x_real_time"] for run in runs]
        summary.append({"load": load, "median": statistics.median(xs), "best": max(xs), "worst": min(xs)})
        print(f"virtual clock, 5 nodes, {load:2d} cmd/s: median {statistics.median(xs):5.1f}x real time, "
              f"best {max(xs):5.1f}x, worst {min(xs):5.1f}x over {len(xs)} rounds")
    return summary


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS)
