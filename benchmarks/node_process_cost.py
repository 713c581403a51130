"""What one node incarnation's process costs: a node of a 3-node isolated
cluster crashed and restarted again and again (its process killed, a new
one forked from the template and its node constructed), with the
simulated time standing still. Reported per incarnation: the machine's
busy CPU time (read from /proc/stat, so it counts the template, the node
process and this one), and wall time; unsandboxed, then in the grader's
bubblewrap sandbox (where each node process also gets namespaces of its own).
Then the page faults of a bare fork that exits at once, by what its parent
imported: what every node process pays before it runs a line.

    python benchmarks/node_process_cost.py [INCARNATIONS]
"""

import os
import sys
import time

import raftkit
from raftkit.isolation.process import class_spec, hosted_class
from raftkit.isolation.sandbox import Sandbox, bwrap_problem


def busy_seconds() -> float:
    """The machine's busy CPU seconds so far (every process: /proc/stat)."""
    fields = open("/proc/stat").readline().split()[1:]
    user, nice, system, _, _, irq, softirq = map(int, fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def measure(sandbox, incarnations: int) -> tuple[float, float]:
    """(busy CPU ms, wall ms) per incarnation."""
    impl = hosted_class(class_spec(raftkit.ConsensusModule), sandbox=sandbox)
    with raftkit.Cluster(3, seed=1, node_class=impl) as c:
        c.run_for(1)
        busy, t0 = busy_seconds(), time.perf_counter()
        for _ in range(incarnations):
            c.crash(2)
            c.restart(2)
        wall = time.perf_counter() - t0
        busy = busy_seconds() - busy
    return 1e3 * busy / incarnations, 1e3 * wall / incarnations


FORK_FAULTS = """
import os, sys
for name in sys.argv[1:]:
    __import__(name)
pid = os.fork()
if pid == 0:
    os._exit(0)
print(os.wait4(pid, 0)[2].ru_minflt)
"""


def fork_faults(*modules: str) -> int:
    """Page faults of a child forked from a Python that imported
    ``modules``, and that exits at once (``ru_minflt``, from ``os.wait4``)."""
    import subprocess
    out = subprocess.run([sys.executable, "-c", FORK_FAULTS, *modules], capture_output=True, text=True, check=True)
    return int(out.stdout)


def main(incarnations: int = 300) -> None:
    kit = os.path.dirname(os.path.abspath(raftkit.__file__))
    problem = bwrap_problem()
    for name, sandbox in (("unsandboxed", None), ("bubblewrap", None if problem else Sandbox(kit=kit))):
        if name == "bubblewrap" and problem:
            print(f"node process, bubblewrap: skipped ({problem})")
            continue
        cpu, wall = measure(sandbox, incarnations)
        print(f"node process, {name}: {cpu:.1f} ms of busy CPU, {wall:.1f} ms wall per incarnation "
              f"({incarnations} crashes and restarts)")
    print("page faults of a fork that exits at once, from a Python that imported: nothing "
          f"{fork_faults()}, threading {fork_faults('threading')}, the kit's node host and IPython "
          f"{fork_faults('raftkit.isolation.host', 'raftkit.grading', 'IPython')}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
