"""Commit latency and throughput of a 3-node cluster on the real clock.

Latency: one command at a time, from submit to the leader applying it,
read from the trace, which the real clock stamps with wall time (so the
benchmark's own polling does not blur it).
Throughput: 2,000 commands submitted back to back; commits per wall second.
"""

import statistics
import time

import raftkit


def latency(n_ops=200, seed=1):
    with raftkit.Cluster(3, clock="real", seed=seed) as c:
        leader = c.check_one_leader()
        for k in range(n_ops):
            index, _, ok = c.submit(k, node=leader)
            if not ok or not c.run_until(lambda c: c.nodes[leader].last_applied >= index, timeout=2.0):
                break
        submitted = {e.detail: e.time for e in c.trace if e.kind == "submit"}
        samples = sorted(e.time - submitted[e.detail.split("command=")[1]]
                         for e in c.trace
                         if e.kind == "apply" and e.node == leader and "command=" in e.detail)
        return {"ops": len(samples), "p50_ms": 1000 * statistics.median(samples),
                "p99_ms": 1000 * samples[int(0.99 * (len(samples) - 1))]}


def throughput(n_ops=2000, seed=2):
    with raftkit.Cluster(3, clock="real", seed=seed) as c:
        leader = c.check_one_leader()
        t0 = time.perf_counter()
        last = 0
        for k in range(n_ops):
            index, _, ok = c.submit(k, node=leader)
            if ok:
                last = index
        c.run_until(lambda c: c.nodes[leader].last_applied >= last, timeout=30.0)
        wall = time.perf_counter() - t0
        return {"ops": c.nodes[leader].last_applied, "ops_per_s": c.nodes[leader].last_applied / wall}


def main():
    lat, thr = latency(), throughput()
    print(f"real clock, 3 nodes: commit latency p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
          f"({lat['ops']} sequential commands)")
    print(f"real clock, 3 nodes: throughput {thr['ops_per_s']:.0f} commands/s ({thr['ops']} submitted back to back)")
    return lat, thr


if __name__ == "__main__":
    main()
