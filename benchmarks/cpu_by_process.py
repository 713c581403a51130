"""Where an isolated battery's CPU time goes, by process: the trusted
process (the scheduler, the harness, the mirrors and predictions), the
node processes (the node code and their frames; each started by a fork
and ended by a kill: their CPU is read from the template, which reaps
them), and the template (its start: Python, the kit, the notebook's
cells; then its forks). Each solution notebook's battery as the grader
runs it (fixed seeds, 101 and 202; node processes unsandboxed, without
the grader's worker processes), with the node processes it started. CPU
time, unlike wall time, barely moves with the machine's load.

    python benchmarks/cpu_by_process.py [EXERCISE ...]      (default: 1-7)
"""

import collections
import os
import resource
import sys

from cores import on_one_core
from round_trips import counting
from trusted_predictions import solution_class

import raftkit.grading.runs as runs
from raftkit.isolation import process


def _own() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _template_cpu(pid: int) -> tuple[float, float]:
    """(the template's own CPU s, its reaped node processes' CPU s) (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def battery_cpu(number: int) -> tuple[float, float, float, int]:
    """(trusted, node processes, template CPU s, node processes started) of solution ``number``'s battery."""
    ex, spec, impl = solution_class(number)
    frames, own = collections.Counter(), _own()
    with counting(frames):
        for sc in ex.scenarios:
            for seed in (*sc.seeds, 101, 202):
                assert runs.run_scenario(sc, impl, seed)["ok"], (sc.name, seed)
    template = next(t for t in process._TEMPLATES.values() if t.spec == spec)  # (started by the first run)
    template.kill_all()
    template_own, nodes = _template_cpu(template.proc.pid)
    return _own() - own, nodes, template_own, frames["(node processes)"]


@on_one_core
def main(exercises=range(1, 8)) -> None:
    for n in exercises:
        trusted, nodes, template, started = battery_cpu(n)
        total = trusted + nodes + template
        print(f"exercise {n}: {total:.1f} s of CPU: trusted process {trusted:.1f} s ({100 * trusted / total:.0f}%), "
              f"node processes {nodes:.1f} s ({100 * nodes / total:.0f}%), template {template:.1f} s; "
              f"{started} node processes started")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or range(1, 8))
