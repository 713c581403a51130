"""Chaos runs: a KV cluster under random faults, watched by the safety
monitor, its client history checked for linearizability at the end.

Every run is a seed: the faults, the clients' operations and the cluster
itself are all drawn from it, so a failing seed replays exactly::

    raftkit chaos --nodes 5 --duration 30 --seed 17

From Python: ``run_seed(17, nodes=5, duration=30)`` or ``run_chaos(...)``.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from . import lincheck
from .errors import RaftkitError
from .kv import ClerkTimeout
from .kvcluster import KVCluster

__all__ = ["ChaosResult", "run_seed", "run_chaos", "replay", "FAULTS", "replay_command"]

FAULTS = ("crash", "restart", "partition", "heal", "disconnect", "connect", "unreliable", "reliable",
          "drops", "delays", "duplication", "long reordering", "calm network")


@dataclass
class ChaosResult:
    seed: int
    nodes: int
    duration: float
    operations: int = 0
    completed: int = 0
    faults: Counter = field(default_factory=Counter)
    violation: str | None = None          # a SafetyViolation, DeadlockError, NodeError ...
    linearizable: str = "not checked"     # "ok" | "illegal" | "unknown"
    lincheck: lincheck.CheckResult | None = None
    digest: str = ""
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        return self.violation is None and self.linearizable == "ok"

    @property
    def problem(self) -> str:
        if self.violation:
            return self.violation.splitlines()[0]
        if self.linearizable != "ok":
            bad = [k for k, s in self.lincheck.per_key.items() if s == self.linearizable] if self.lincheck else []
            return f"history {self.linearizable} (keys {bad})"
        return ""


def replay_command(result: ChaosResult, clients: int = 3) -> str:
    return (f"raftkit chaos --nodes {result.nodes} --duration {result.duration:g} "
            f"--clients {clients} --seed {result.seed}")


def _inject(kv: KVCluster, rng: random.Random) -> str:
    """One random fault."""
    n = kv.n
    fault = rng.choice(FAULTS)
    if fault == "crash":
        kv.crash(rng.randrange(n))
    elif fault == "restart":
        kv.restart(rng.randrange(n))
    elif fault == "partition":
        ids = list(range(n))
        rng.shuffle(ids)
        cut = rng.randrange(1, n)
        kv.partition(ids[:cut], ids[cut:])
    elif fault == "heal":
        kv.heal()
    elif fault == "disconnect":
        kv.disconnect(rng.randrange(n))
    elif fault == "connect":
        kv.connect(rng.randrange(n))
    elif fault in ("unreliable", "reliable"):
        kv.set_reliable(fault == "reliable")
    elif fault == "drops":
        kv.set_network(request_drop=rng.uniform(0, 0.3), reply_drop=rng.uniform(0, 0.3))
    elif fault == "delays":
        kv.set_network(delay=(0.0, rng.uniform(0.0, 0.1)))
    elif fault == "duplication":
        kv.set_network(duplicate=rng.uniform(0, 0.3))
    elif fault == "long reordering":
        kv.set_long_reordering(True)
    else:
        kv.set_network(request_drop=0.0, reply_drop=0.0, delay=(0.0, 0.0), duplicate=0.0, long_reordering=False)
    return fault


def _client(seed: int, keys: int, stop: list):
    def body(clerk):
        rng = random.Random(f"{seed}/client{clerk.client_id}")
        clock = clerk.cluster.clock
        while not stop:
            if rng.random() < 0.2:  # clients reconnect to a random server now and then
                clerk.leader = rng.randrange(clerk.cluster.n)
            key = f"k{rng.randrange(keys)}"
            kind = rng.choice(("get", "put", "append"))
            try:
                if kind == "get":
                    clerk.get(key)
                elif kind == "put":
                    clerk.put(key, f"{clerk.client_id}.{clerk.seq + 1};")
                else:
                    clerk.append(key, f"{clerk.client_id}.{clerk.seq + 1};")
            except ClerkTimeout:
                pass  # stays in the history as "maybe applied"
            clock.sleep(rng.uniform(0.0, 0.05))
    return body


def _cluster(seed, nodes, snapshot_interval, cluster_options) -> KVCluster:
    return KVCluster(nodes, seed=seed, snapshot_interval=snapshot_interval, clerk_timeout=5.0, **cluster_options)


def _drive(kv: KVCluster, seed: int, duration: float, clients: int, keys: int,
           faults: Counter, until: float = float("inf")) -> bool:
    """The chaos scenario of ``seed`` on ``kv``: faults every 0.2-1.0 s for
    ``duration``, then heal, restart everyone, let the clients finish.
    Stops early at cluster time ``until`` (returns False)."""
    rng = random.Random(f"{seed}/chaos")
    stop: list = []

    def run_for(dt):
        if kv.now + dt >= until:
            kv.run_for(max(0.0, until - kv.now))
            return False
        kv.run_for(dt)
        return True

    for _ in range(clients):
        kv.start_client(_client(seed, keys, stop))
    while kv.now < duration:
        if not run_for(rng.uniform(0.2, 1.0)):
            return False
        faults[_inject(kv, rng)] += 1
    kv.heal()
    kv.set_network(request_drop=0.0, reply_drop=0.0, delay=(0.0, 0.0), duplicate=0.0, long_reordering=False)
    for i in range(kv.n):
        if not kv.is_alive(i):
            kv.restart(i)
    if not run_for(2.0):
        return False
    stop.append(True)
    return run_for(kv.clerk_timeout + 1.0)


def run_seed(seed: int, *, nodes: int = 5, duration: float = 30.0, clients: int = 3, keys: int = 3,
             snapshot_interval: int | None = 25, lincheck_timeout: float = 10.0,
             **cluster_options) -> ChaosResult:
    """One chaos run: ``duration`` seconds of cluster time with a fault
    every 0.2-1.0 s, then the network heals and every node restarts, the
    clients finish, and the history is checked. ``cluster_options`` go to
    ``KVCluster`` (e.g. ``node_class=...`` or ``service_class=...`` to try your own)."""
    if not (isinstance(duration, (int, float)) and duration > 0):
        raise ValueError(f"duration must be a number of seconds > 0, got {duration!r}")
    result = ChaosResult(seed, nodes, duration)
    t0 = time.perf_counter()
    kv = _cluster(seed, nodes, snapshot_interval, cluster_options)
    try:
        _drive(kv, seed, duration, clients, keys, result.faults)
    except RaftkitError as e:
        result.violation = f"{type(e).__name__}: {e}"
    finally:
        kv.stop()
    result.digest = kv.trace_digest()
    history = [lincheck.Operation(**vars(e)) for e in kv.history]
    result.operations = len(history)
    result.completed = sum(op.ret is not None for op in history)
    if result.violation is None:
        result.lincheck = lincheck.check(history, timeout=lincheck_timeout)
        result.linearizable = result.lincheck.status
    result.wall = time.perf_counter() - t0
    return result


def replay(seed: int, until: float, *, nodes: int = 5, duration: float = 30.0, clients: int = 3,
           keys: int = 3, snapshot_interval: int | None = 25, **cluster_options) -> KVCluster:
    """The chaos run of ``seed`` as it was at cluster time ``until``, still
    running: step it, draw it, show it. (Stop it when done.) A safety
    violation before ``until`` is raised, with the cluster in ``error.cluster``."""
    kv = _cluster(seed, nodes, snapshot_interval, cluster_options)
    try:
        _drive(kv, seed, duration, clients, keys, Counter(), until)
    except RaftkitError as e:
        e.cluster = kv
        raise
    return kv


def run_chaos(*, nodes: int = 5, seeds: int = 100, duration: float = 30.0, first_seed: int = 0,
              clients: int = 3, progress: bool = True, out=None, **cluster_options) -> list[ChaosResult]:
    """Run ``seeds`` chaos runs and print a summary table (to ``out``).
    ``cluster_options`` (e.g. ``service_class=...``) go to every run."""
    out = out or sys.stdout
    results = []
    bar = _progress(seeds, progress)
    for seed in range(first_seed, first_seed + seeds):
        r = run_seed(seed, nodes=nodes, duration=duration, clients=clients, **cluster_options)
        results.append(r)
        bar.update(1)
        bar.set_postfix(failed=sum(not x.ok for x in results))
    bar.close()
    print(summary(results, clients), file=out)
    return results


def summary(results: list[ChaosResult], clients: int = 3) -> str:
    lines = [" seed   ops  done  faults  result", " ----  ----  ----  ------  ------"]
    for r in results:
        lines.append(f" {r.seed:>4}  {r.operations:>4}  {r.completed:>4}  {sum(r.faults.values()):>6}  "
                     f"{'ok' if r.ok else 'FAILED: ' + r.problem}")
    failed = [r for r in results if not r.ok]
    faults = sum((r.faults for r in results), Counter())
    lines.append(f"{len(results)} seeds, {sum(r.operations for r in results)} operations, "
                 f"{sum(faults.values())} faults injected ({', '.join(f'{k} {v}' for k, v in faults.most_common())}), "
                 f"{sum(r.violation is not None for r in results)} safety violations, "
                 f"{sum(r.violation is None and r.linearizable != 'ok' for r in results)} histories not linearizable")
    for r in failed:
        lines.append(f"FAILED seed {r.seed}: {r.problem}\n  replay: {replay_command(r, clients)}")
    return "\n".join(lines)


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc="chaos", unit="seed", file=sys.stderr, disable=not enabled)
