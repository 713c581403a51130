"""raftkit's real clock beside PySyncObj, same workload, same run.

Three nodes in one interpreter, commands sent straight to the leader, state
kept in memory by both. raftkit runs with no modelled network delay
(``Config(rpc_delay=(0.0, 0.0))``) and PySyncObj's election timeouts;
PySyncObj 0.3.17 talks TCP over localhost, with ``appendEntriesUseBatch``
off and on, its other settings at their defaults. A command counts when
the leader has applied it.

* sequential latency: one command at a time, submit to applied, p50/p99;
* back-to-back throughput: ``--ops`` commands submitted without waiting,
  commands applied per wall second until the last is applied;
* before each timed run, ``gc.collect()`` (for every system alike): the
  garbage of the run before is not the next one's to collect;
* memory: the growth of the resident set of a fresh interpreter that commits
  100,000 commands (run in a child process, for a clean heap).

The systems take turns, round after round, so a slow moment of the shared
machine hurts each of them alike; the table gives each one's median round.
PySyncObj is needed only here: ``pip install -e '.[bench]'``.

    .venv/bin/python benchmarks/real_vs_pysyncobj.py [--rounds 3] [--ops 20000] [--no-memory]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import raftkit
from raftkit.service import Service

TIMEOUT = 60.0  # every wait is bounded
ATTEMPTS = 3    # a measurement whose leader lost its term is tried again (and counted in the failures)
# No modelled network delay; elections on PySyncObj's default timeouts (raftMinTimeout=0.4,
# raftMaxTimeout=1.4): with the kit's default 150-300 ms, a leader busy with a saturating client on
# a loaded 2-core machine now and then misses a heartbeat and loses its term mid-run (either system).
NO_DELAY = raftkit.Config(rpc_delay=(0.0, 0.0), election_timeout=(0.4, 1.4))
MEMORY_CONFIG = raftkit.Config(rpc_delay=(0.0, 0.0), election_timeout=(2.0, 4.0))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _percentiles(samples: list[float]) -> dict:
    samples = sorted(samples)
    return {"p50_ms": 1000 * statistics.median(samples), "p99_ms": 1000 * samples[int(0.99 * (len(samples) - 1))]}


# ------------------------------------------------------------------ raftkit
class _Signalled(Service):
    """The recording service, which also wakes whoever waits for an index."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cond = threading.Condition()
        self.awaited = None  # the index someone waits for

    def execute(self, index, command):
        if index == self.awaited:
            with self.cond:
                self.cond.notify_all()

    def wait_applied(self, index: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            self.awaited = index
            while not self.cond.wait_for(lambda: self.last_index >= index, 1.0):
                if not self.node.get_state()[1]:  # a new leader may never fill this index
                    raise RuntimeError("the leader lost its leadership during the benchmark")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"index {index} not applied within {TIMEOUT} s")


class Raftkit:
    """``via="cluster"``: ``Cluster.submit(command, node=leader)``, the harness
    call (it copies the command and records the call for ``rerun``);
    ``via="node"``: the leader's ``submit``, as a service such as the KV
    server calls it (MIT's ``Start``)."""

    def __init__(self, config: raftkit.Config = NO_DELAY, via: str = "cluster"):
        self.config, self.via = config, via
        self.name = "raftkit real clock" + (", node.submit" if via == "node" else "")

    def __enter__(self):
        self.c = raftkit.Cluster(3, clock="real", seed=1, config=self.config, service_class=_Signalled)
        self.leader = self.c.check_one_leader()
        self.service = self.c.services[self.leader]
        return self

    def __exit__(self, *exc):
        self.c.stop()

    def submit(self, k) -> int:
        if self.via == "node":
            index, _, ok = self.c.nodes[self.leader].submit(k)
        else:
            index, _, ok = self.c.submit(k, node=self.leader)
        if not ok:
            raise RuntimeError("the leader lost its leadership during the benchmark")
        return index

    def one(self, k) -> None:
        self.service.wait_applied(self.submit(k))

    def burst(self, n: int) -> int:
        last = 0
        for k in range(n):
            last = self.submit(k)
        self.service.wait_applied(last)
        return n


# ---------------------------------------------------------------- PySyncObj
def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class PySyncObj:
    def __init__(self, batch: bool):
        self.batch = batch
        self.name = f"PySyncObj, batching {'on' if batch else 'off'}"

    def __enter__(self):
        from pysyncobj import SyncObj, SyncObjConf, replicated

        class Counter(SyncObj):
            def __init__(self, me, others, conf):
                super().__init__(me, others, conf)
                self.value = 0

            @replicated
            def add(self, x):
                self.value += x
                return self.value

        addrs = [f"127.0.0.1:{p}" for p in _free_ports(3)]
        conf = SyncObjConf(appendEntriesUseBatch=self.batch, dynamicMembershipChange=False)
        self.nodes = [Counter(a, [b for b in addrs if b != a], conf) for a in addrs]
        deadline = time.monotonic() + TIMEOUT
        while not any(n._isLeader() for n in self.nodes):
            if time.monotonic() > deadline:
                raise TimeoutError("PySyncObj elected no leader")
            time.sleep(0.01)
        self.leader = next(n for n in self.nodes if n._isLeader())
        self.leader.add(0, sync=True, timeout=TIMEOUT)  # its first entry of the term is committed
        return self

    def __exit__(self, *exc):
        for n in self.nodes:
            n.destroy()

    def one(self, k) -> None:
        self.leader.add(1, sync=True, timeout=TIMEOUT)

    def burst(self, n: int) -> int:
        done = threading.Event()
        count = [0]
        errors = []

        def applied(result, error):
            if error:  # FAIL_REASON.SUCCESS is 0
                errors.append(error)
            count[0] += 1
            if count[0] == n:
                done.set()

        for _ in range(n):
            self.leader.add(1, callback=applied)
        if not done.wait(TIMEOUT):
            raise TimeoutError(f"PySyncObj applied {count[0]} of {n} commands within {TIMEOUT} s")
        return n - len(errors)


# -------------------------------------------------------------- workloads
def latency(system, n_ops: int) -> dict:
    with system:
        gc.collect()  # the previous measurement's garbage is not this one's to collect
        samples = []
        for k in range(n_ops):
            t0 = time.perf_counter()
            system.one(k)
            samples.append(time.perf_counter() - t0)
    return _percentiles(samples)


def throughput(system, n_ops: int) -> dict:
    with system:
        gc.collect()
        t0 = time.perf_counter()
        applied = system.burst(n_ops)
        wall = time.perf_counter() - t0
    return {"ops_per_s": applied / wall, "applied": applied}


def memory(which: str, n_ops: int = 100_000) -> dict:
    """In this (fresh) process: resident-set growth while a cluster holds ``n_ops`` committed commands."""
    # raftkit with 2-4 s election timeouts: 100,000 commands are ten bursts, and on a loaded 2-core
    # machine a term now and then ends mid-run at 0.4-1.4 s; timeouts do not enter a memory figure.
    system = (Raftkit(MEMORY_CONFIG, via=which) if which in ("cluster", "node") else PySyncObj(batch=which == "batch"))
    gc.collect()
    before = _rss_bytes()
    with system:
        for start in range(0, n_ops, 10_000):
            system.burst(min(10_000, n_ops - start))
        gc.collect()
        grown = _rss_bytes() - before
    return {"mb_per_100k": grown / 2**20 * 100_000 / n_ops}


def _memory_in_child(which: str) -> float:
    """A fresh interpreter per attempt; one whose leader lost its term is tried again."""
    for _attempt in range(ATTEMPTS):
        out = subprocess.run([sys.executable, __file__, "--memory-of", which], capture_output=True, text=True,
                             timeout=600, env=dict(os.environ, PYTHONPATH=os.getcwd()))
        if out.returncode == 0:
            return json.loads(out.stdout)["mb_per_100k"]
        print(f"  memory run for {which} failed: {out.stderr.strip().splitlines()[-1:]}", flush=True)
    return float("nan")


def main(rounds: int = 3, seq_ops: int = 500, ops: int = 20_000, with_memory: bool = True) -> dict:
    systems = {"raftkit": Raftkit, "node": lambda: Raftkit(via="node"), "off": lambda: PySyncObj(False),
               "batch": lambda: PySyncObj(True)}
    lat = {k: [] for k in systems}
    thr = {k: [] for k in systems}
    failures = []
    for r in range(rounds):
        for key, make in systems.items():
            for results, measure, n in ((lat, latency, seq_ops), (thr, throughput, ops)):
                for _attempt in range(ATTEMPTS):
                    try:
                        results[key].append(measure(make(), n))
                        break
                    except (RuntimeError, TimeoutError) as e:  # a failed attempt is reported, not hidden
                        failures.append(f"round {r + 1}, {make().name}, {measure.__name__}: {e}")
                        print(f"  {failures[-1]}", flush=True)
            print(f"  round {r + 1}: {make().name:<32} {_show(lat[key], 'p50_ms', '{:6.2f} ms')} p50  "
                  f"{_show(lat[key], 'p99_ms', '{:7.2f} ms')} p99  {_show(thr[key], 'ops_per_s', '{:8.0f}')} "
                  "commands/s", flush=True)
    mem = {k: _memory_in_child("cluster" if k == "raftkit" else k) for k in systems} if with_memory else {}
    print(f"3 nodes in one interpreter, commands to the leader; median of {rounds} rounds "
          f"({seq_ops} sequential commands, {ops} back to back)")
    print(f"| | {' | '.join(make().name for make in systems.values())} |")
    print("|---|" + "---|" * len(systems))
    rows = [("sequential commit latency p50", lambda k: _median(lat[k], "p50_ms", "{:.2f} ms", rounds)),
            ("sequential commit latency p99", lambda k: _median(lat[k], "p99_ms", "{:.2f} ms", rounds)),
            ("back-to-back throughput", lambda k: _median(thr[k], "ops_per_s", "{:,.0f} commands/s", rounds))]
    if mem:
        rows.append(("memory per 100,000 committed commands", lambda k: f"{mem[k]:.0f} MB"))
    for title, cell in rows:
        print(f"| {title} | {' | '.join(cell(k) for k in systems)} |")
    print(f"failed attempts (tried again, up to {ATTEMPTS} per measurement): {len(failures)}")
    for f in failures:
        print(f"  {f}")
    return {"latency": lat, "throughput": thr, "memory": mem, "failures": failures}


def _show(runs: list, key: str, fmt: str) -> str:
    return fmt.format(runs[-1][key]) if runs else "failed"


def _median(runs: list, key: str, fmt: str, rounds: int) -> str:
    if not runs:
        return "failed"
    cell = fmt.format(statistics.median(x[key] for x in runs))
    return cell if len(runs) == rounds else f"{cell} ({rounds - len(runs)} of {rounds} rounds failed)"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=500, help="sequential commands per round")
    parser.add_argument("--ops", type=int, default=20_000, help="back-to-back commands per round")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-of", choices=["cluster", "node", "off", "batch"], help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.memory_of:
        print(json.dumps(memory(a.memory_of)))
    else:
        main(a.rounds, a.sequential, a.ops, not a.no_memory)
