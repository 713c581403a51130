"""What one more election-timer tick, and one more heartbeat RPC, cost in
CPU: a steady 3-node cluster (a leader, no commands) runs 120 simulated
seconds, then again with the ticker's interval halved (twice the ticks),
then with the heartbeat interval halved (twice the heartbeats). The
difference in CPU time, divided by the events added, is their cost; busy
CPU is the machine's (the trusted process and the node processes). In
process, and isolated as the grader runs it (predicted: in this cluster
nearly every step is), side by side.

    python benchmarks/marginal_costs.py
"""

import resource

from cores import on_one_core
from node_process_cost import busy_seconds

import raftkit
from raftkit.isolation.process import class_spec, hosted_class

SIMULATED = 120.0


def _own() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(node_class, **config) -> tuple[float, float, int]:
    """(busy CPU s, this process's CPU s, RPCs) for SIMULATED steady seconds."""
    with raftkit.Cluster(3, seed=1, node_class=node_class, config=raftkit.Config(**config)) as c:
        c.run_for(2)
        busy, own, rpcs = busy_seconds(), _own(), c.rpc_count()
        c.run_for(SIMULATED)
        return busy_seconds() - busy, _own() - own, c.rpc_count() - rpcs


@on_one_core
def main() -> None:
    isolated = hosted_class(class_spec(raftkit.ConsensusModule), predict=True)
    for name, node_class in (("in-process", raftkit.ConsensusModule), ("isolated", isolated)):
        base_busy, base_own, base_rpcs = measure(node_class)
        tick_busy, tick_own, _ = measure(node_class, ticker_interval=0.005)
        beat_busy, beat_own, beat_rpcs = measure(node_class, heartbeat_interval=0.025)
        ticks = 2 * SIMULATED / 0.010  # the two followers' timers: a leader's stops ticking
        rpcs = beat_rpcs - base_rpcs
        print(f"{name:>10}: a tick {1e6 * (tick_busy - base_busy) / ticks:5.1f} us "
              f"(this process {1e6 * (tick_own - base_own) / ticks:5.1f}), a heartbeat RPC "
              f"{1e6 * (beat_busy - base_busy) / rpcs:5.1f} us "
              f"(this process {1e6 * (beat_own - base_own) / rpcs:5.1f}); "
              f"the steady cluster {base_busy:.2f} s of busy CPU for {SIMULATED:.0f} simulated s")


if __name__ == "__main__":
    main()
