"""Chaos runner throughput: seeds per minute of wall time for the default
run (5 nodes, 30 s of cluster time per seed, 3 KV clients)."""

import time

from raftkit import chaos


def main(seeds=10, nodes=5, duration=30.0):
    t0 = time.perf_counter()
    results = [chaos.run_seed(s, nodes=nodes, duration=duration) for s in range(seeds)]
    wall = time.perf_counter() - t0
    ops = sum(r.operations for r in results)
    print(f"chaos: {seeds} seeds x {duration:g} s, {nodes} nodes: {wall:.1f} s wall, "
          f"{60 * seeds / wall:.0f} seeds/minute, {ops} operations, "
          f"{sum(not r.ok for r in results)} failures")
    return 60 * seeds / wall


if __name__ == "__main__":
    main()
