"""Where an isolated cluster's CPU goes, per scheduler event: the trusted
process (scheduler, bus, monitor, mirrors; user and system time) and the
node processes (read from /proc), with the trusted process's voluntary
context switches per event. Two workloads on a 5-node cluster
(``isolation="process"``): idle (elections and heartbeats only, 20
simulated seconds) and busy (a ``submit`` every 20 ms, as in
isolation_speed.py, 5 simulated seconds), busy also as the grader runs
nodes (with its predictions); and quiet (3 nodes, all
disconnected, 20 simulated seconds: elections that fail, and ticks), strict
and with the grader's predicted ticks. Every cluster on one core, as a
grading worker runs it; busy and predicted also with the node processes on
a second core, running ahead of the scheduler. CPU time, unlike wall time,
barely moves with the machine's load.

    python benchmarks/isolation_cpu.py [ROUNDS]
"""

import os
import resource
import sys
import time

from cores import cores

import raftkit
from raftkit.isolation.process import class_spec, hosted_class


def _node_cpu(pids) -> tuple[float, float]:
    """(user, system) CPU seconds of processes ``pids`` so far (Linux /proc)."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / os.sysconf("SC_CLK_TCK"), system / os.sysconf("SC_CLK_TCK")


def _cluster(workload: str):
    with cores(one=not workload.endswith("two cores")):  # (one: as a grading worker runs them)
        return _made(workload)


def _made(workload: str):
    if workload.startswith("busy, predicted"):  # as the grader runs nodes (isolation_speed.py's "predicted" modes)
        return raftkit.Cluster(5, seed=3, node_class=hosted_class(class_spec(raftkit.ConsensusModule), predict=True))
    if not workload.startswith("quiet"):
        return raftkit.Cluster(5, seed=3 if workload == "busy" else 1, isolation="process")
    # three nodes alone: nearly every event a tick, most of them predicted unless strict
    node_class = hosted_class(class_spec(raftkit.ConsensusModule), predict=workload == "quiet")
    c = raftkit.Cluster(3, seed=1, node_class=node_class)
    for i in range(3):
        c.disconnect(i)
    return c


def measure(workload: str) -> str:
    busy = workload.startswith("busy")
    with _cluster(workload) as c:
        if busy:
            c.check_one_leader()
        else:
            c.run_for(1)
        pids = [h.pid for h in c._hosts.hosts]
        nodes0, me0 = _node_cpu(pids), resource.getrusage(resource.RUSAGE_SELF)
        events0, t0 = c.clock.events, time.perf_counter()
        if busy:
            for k in range(250):
                c.run_for(1 / 50)
                c.submit(k)
        else:
            c.run_for(20)
        wall, events = time.perf_counter() - t0, c.clock.events - events0
        me, nodes = resource.getrusage(resource.RUSAGE_SELF), _node_cpu(pids)
    per = 1e6 / events
    return (f"{workload}: {events} events, {wall * per:5.1f} us wall per event; CPU per event: "
            f"trusted user {(me.ru_utime - me0.ru_utime) * per:5.1f} + system {(me.ru_stime - me0.ru_stime) * per:5.1f}"
            f" us, node processes user {(nodes[0] - nodes0[0]) * per:5.1f} + system {(nodes[1] - nodes0[1]) * per:5.1f}"
            f" us; {(me.ru_nvcsw - me0.ru_nvcsw) / events:.2f} "
            "voluntary switches of the trusted process")


def main(rounds=2):
    for _ in range(rounds):
        for workload in ("idle", "busy", "busy, predicted", "busy, predicted, two cores", "quiet, strict", "quiet"):
            print(measure(workload), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
