"""How many times faster than real time a 5-node cluster runs under the virtual clock.

Two loads: idle (elections settled, heartbeats only) and a client that
submits 50 commands per simulated second. Prints simulated seconds per wall
second ("x real time"); the target is >= 50x.
"""

import time

import raftkit

SIM_SECONDS = 20.0


def speed(load_per_second: int, seed: int = 3) -> dict:
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


def main():
    rows = [speed(0), speed(50)]
    for r in rows:
        print(f"virtual clock, 5 nodes, {r['load']:>9}: {r['x_real_time']:6.1f}x real time  "
              f"({r['events_per_sim_s']:.0f} events per simulated s, {r['us_per_event']:.1f} us/event, "
              f"{r['committed']} committed)")
    return rows


if __name__ == "__main__":
    main()
