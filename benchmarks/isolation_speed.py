"""Virtual-clock speed of a 5-node cluster with every node in a process of
its own (``isolation="process"``), beside the same cluster in-process: a
client submits 50 commands per simulated second (a ``run_for`` step and a
``submit`` every 20 ms, as in virtual_speed.py). Prints simulated seconds per
wall second ("x real time") and the wall cost of one scheduler event, and the
context switches per event of the processes involved (the node processes
and this one): a figure the machine's load does not change much, where wall
times on a busy machine mostly measure the wait for a core at each switch.
The aim for the isolated cluster is >= 15x. Two more modes run the isolated
cluster with the grader's predictions (idle election-timer ticks and the
rest: ``hosted_class(..., predict=True)``): on one core, as a grading
worker given a core of its own runs it (``RAFTKIT_CPU``), and with the node
processes on a second core, where they run their predicted frames while the
scheduler goes on (as a cluster in a notebook runs, where the machine has a
core to spare). Rounds alternate the modes, so a machine that slows down
mid-run slows them all."""

import contextlib
import glob
import resource
import statistics
import sys
import time

from cores import cores

import raftkit

SIM_SECONDS = 5.0


def switches(hosts) -> int:
    """Context switches so far of this process (all its threads) and of the
    node processes ``hosts`` (Linux /proc)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    total = me.ru_nvcsw + me.ru_nivcsw
    for pid in hosts:
        for status in glob.glob(f"/proc/{pid}/task/*/status"):
            with contextlib.suppress(OSError), open(status) as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    return total


def _cluster(mode, seed):
    if mode.startswith("predicted"):  # as the grader runs nodes: idle election-timer ticks (and more) predicted
        from raftkit.isolation.process import class_spec, hosted_class
        impl = hosted_class(class_spec(raftkit.ConsensusModule), predict=True)
        with cores(one=mode == "predicted, one core"):
            return raftkit.Cluster(5, seed=seed, node_class=impl)
    return raftkit.Cluster(5, seed=seed, isolation={"in-process": None, "isolated": "process"}[mode])


def speed(mode, seed=3) -> tuple[float, float, float]:
    with _cluster(mode, seed) as c:
        c.check_one_leader()
        hosts = [h.pid for h in c._hosts.hosts] if mode != "in-process" else []
        events0, switches0, t0 = c.clock.events, switches(hosts), time.perf_counter()
        for k in range(int(SIM_SECONDS * 50)):
            c.run_for(1 / 50)
            c.submit(k)
        wall = time.perf_counter() - t0
        events = c.clock.events - events0
        return SIM_SECONDS / wall, wall / events * 1e6, (switches(hosts) - switches0) / events


def main(rounds=3):
    rows = {"in-process": [], "isolated": [], "predicted, one core": [], "predicted, two cores": []}
    for r in range(rounds):
        for mode in rows:
            x, us, sw = speed(mode)
            rows[mode].append((x, us, sw))
            print(f"round {r + 1}: {mode:<20} {x:6.1f}x real time, "
                  f"{us:6.0f} us per event, {sw:4.1f} context switches per event", flush=True)
    for mode, got in rows.items():
        print(f"median {mode:<20} {statistics.median(x for x, _, _ in got):6.1f}x "
              f"real time, {statistics.median(us for _, us, _ in got):6.0f} us per event, "
              f"{statistics.median(sw for _, _, sw in got):4.1f} context switches per event")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
