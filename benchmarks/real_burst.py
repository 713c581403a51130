"""CPU per command of raftkit's real clock in a back-to-back burst.

The burst of ``real_vs_pysyncobj.py`` alone (3 nodes in one interpreter, no
modelled delay, ``--ops`` commands submitted without waiting, timed until
the leader applied the last), through ``Cluster.submit`` or the leader's
``submit``. Beside commands per wall second it prints the process's CPU time
per command (``os.times``; 10 ms resolution, so about 0.5 us per command at
20,000) and the RPCs the burst took: under one GIL on a shared machine the
CPU figure moves less than the wall-clock one. To compare two trees, run it
with each first on ``PYTHONPATH``, alternating.

    .venv/bin/python benchmarks/real_burst.py [--via cluster|node] [--ops 20000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import time

from real_vs_pysyncobj import Raftkit  # the same system and workload


def burst(via: str, ops: int) -> dict:
    with Raftkit(via=via) as system:
        rpcs = system.c.rpc_count()
        t0, c0 = time.perf_counter(), os.times()
        system.burst(ops)
        wall, c1 = time.perf_counter() - t0, os.times()
        rpcs = system.c.rpc_count() - rpcs
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {"ops_per_s": ops / wall, "cpu_us_per_command": cpu / ops * 1e6, "rpcs": rpcs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--via", choices=["cluster", "node"], default="cluster")
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4)
    a = parser.parse_args()
    for _ in range(a.rounds):
        r = burst(a.via, a.ops)
        print(f"{a.via}.submit x {a.ops}: {r['ops_per_s']:8,.0f} commands/s  "
              f"{r['cpu_us_per_command']:5.1f} us CPU per command  {r['rpcs']:4d} RPCs", flush=True)
