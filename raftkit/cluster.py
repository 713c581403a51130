"""The harness everybody uses: n nodes, the bus, their storage, one clock.

Notebooks, widgets, exercises, the grader and tests all drive a ``Cluster``.
Under the virtual clock nothing moves between calls: the cluster is frozen
while your code runs, so the same seed and the same calls give the same run.

>>> import raftkit
>>> with raftkit.Cluster(3, seed=7) as c:
...     leader = c.check_one_leader()
...     c.one("x", 3)
1
"""

from __future__ import annotations

import functools
import os
import pickle
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .bus import Bus, Message
from .clock import RealClock, VirtualClock
from .config import Config
from .errors import CheckFailed
from .messages import ApplyMsg, slot_setters
from .raft import ConsensusModule
from .safety import SafetyMonitor
from .service import Service
from .state import ClusterState, NodeState
from .storage import FileStorage, MemoryStorage
from .trace import IMMUTABLE_TYPES, Event, Trace

__all__ = ["Cluster", "ClusterState", "NodeState", "Action", "MAX_NODES"]

MAX_NODES = 15
_NODE_KWARGS = [(("node", i),) for i in range(MAX_NODES)]  # a submit's recorded kwargs, made once
ELECTION_TIMEOUT = 1.0  # MIT tester's unit for its sleeps
_DROPPED: list = []     # clocks of clusters dropped without stop(): stopped when the next cluster starts


def takes_turns(method: Callable) -> Callable:
    """A public call that touches the nodes or the scheduler: it waits while
    another thread runs the cluster (``Clock.driving``), so a notebook cell and
    a playing widget take turns instead of racing."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if not self.virtual:  # real-clock threads run freely: there are no turns to take
            return method(self, *args, **kwargs)
        with self.clock.driving():
            return method(self, *args, **kwargs)
    return call


class _Watcher:
    """What node threads call back into: the safety checks after each event,
    and the record of each apply. It holds the cluster's parts, not the
    cluster, so that a cluster its user dropped can be collected."""

    def __init__(self, cluster: Cluster):
        self.n, self.nodes, self.alive = cluster.n, cluster.nodes, cluster._alive  # shared lists
        self.dirty, self.monitor, self.recorder = cluster._dirty, cluster.monitor, cluster.recorder

    def after_event(self, task):
        """Virtual clock: called by each thread as it yields. Checks the
        nodes whose code just ran."""
        monitor = self.monitor
        if monitor is None:
            self.dirty.clear()
            return
        owner = task.owner
        i = getattr(owner, "id", None)
        if isinstance(i, int) and 0 <= i < self.n and self.nodes[i] is owner and self.alive[i]:
            monitor.check(owner)
        while self.dirty:
            i = self.dirty.pop()
            if self.alive[i]:
                monitor.check(self.nodes[i])

    def on_apply(self, node_id, msg: ApplyMsg):
        if msg.command_valid:
            self.recorder.record_command("apply", node_id, msg.command_index, msg.command)
        else:
            self.recorder.record("apply", node_id, None, f"snapshot up to {msg.snapshot_index}")
        if self.monitor is not None and msg.command_valid:
            self.monitor.check_apply(node_id, msg.command_index, msg.command)


def _stop_dropped_clusters() -> None:
    """A notebook that re-runs ``c = Cluster(...)`` drops a running cluster
    each time; its parked threads (about 20) are ended here."""
    while _DROPPED:
        _DROPPED.pop().stop()


@dataclass(frozen=True, slots=True)
class Action:
    """A call that changed the cluster: when (scheduler events run so far,
    cluster time), which method, with which arguments."""

    events: int
    time: float
    method: str
    args: tuple = ()
    kwargs: tuple = ()

    def __init__(self, events: int, time: float, method: str, args: tuple = (), kwargs: tuple = ()):
        # one per submit: written out, as LogEntry's in messages.py
        a, b, c, d, e = _ACTION_SETTERS
        a(self, events)
        b(self, time)
        c(self, method)
        d(self, args)
        e(self, kwargs)


_ACTION_SETTERS = slot_setters(Action)


def _check_int(name, value, lo=None, hi=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")


def _check_seconds(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")


class Cluster:
    """A Raft cluster of ``n`` nodes. See API.md for the whole contract."""

    def __init__(self, n: int = 3, *, seed: int = 0, clock: str = "virtual", speed: float = 1.0,
                 config: Config | None = None, node_class: type | None = None,
                 snapshot_interval: int | None = None, check_invariants: bool = True,
                 data_dir: str | os.PathLike | None = None, watchdog: float = 5.0,
                 service_class: type = Service, isolation: str | None = None):
        _check_int("n", n, 1, MAX_NODES)
        _check_int("seed", seed)
        if clock not in ("virtual", "real"):
            raise ValueError(f'clock must be "virtual" or "real", got {clock!r}')
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a raftkit.Config, got {type(config).__name__}")
        node_class = ConsensusModule if node_class is None else node_class
        if isolation not in (None, "process"):
            raise ValueError(f'isolation must be None (nodes in this process) or "process", got {isolation!r}')
        if getattr(node_class, "raftkit_spec", None) is not None:  # a class that exists only in node processes
            isolation = "process"
        elif not (isinstance(node_class, type) and issubclass(node_class, ConsensusModule)):
            raise TypeError(f"node_class must be a subclass of raftkit.ConsensusModule, got {node_class!r}")
        if snapshot_interval is not None:
            _check_int("snapshot_interval", snapshot_interval, 1)
        if not (isinstance(service_class, type) and issubclass(service_class, Service)):
            raise TypeError(f"service_class must be a subclass of raftkit.service.Service, got {service_class!r}")
        self.service_class = service_class
        self.options = dict(seed=seed, clock=clock, speed=speed, config=config, node_class=node_class,
                            snapshot_interval=snapshot_interval, check_invariants=check_invariants,
                            data_dir=data_dir, watchdog=watchdog, service_class=service_class)
        if isolation is not None:
            self.options["isolation"] = isolation
        self.actions: list[Action] = []  # what the user did, for rerun()
        self.n, self.seed, self.node_class = n, seed, node_class
        self.config = config or Config()
        self.snapshot_interval = snapshot_interval
        _stop_dropped_clusters()
        # isolated: the node threads' trusted twins only relay (isolation/process.py), as greenlets
        self.clock = (VirtualClock(watchdog=watchdog, greenlets=isolation == "process") if clock == "virtual"
                      else RealClock(speed))
        self._when_dropped = weakref.finalize(self, _DROPPED.append, self.clock)
        self._when_dropped.atexit = False
        self.virtual = clock == "virtual"
        self.recorder = Trace(self.clock.now)
        self._dirty: list[int] = []
        self.bus = Bus(n, self.clock, random.Random(f"{seed}/bus"), self.recorder, self.config.rpc_delay,
                       on_handler=self._dirty.append)
        self.monitor = SafetyMonitor(n, self.recorder) if check_invariants else None
        self.data_dir = None if data_dir is None else os.fspath(data_dir)
        self._storages = [FileStorage(os.path.join(self.data_dir, f"node-{i}.raft")) if self.data_dir
                          else MemoryStorage() for i in range(n)]
        self.nodes: list[ConsensusModule] = [None] * n
        self.services: list[Service] = [None] * n
        self._alive = [False] * n
        self._incarnations = [0] * n
        self._harness_rng = random.Random(f"{seed}/harness")
        self._started_empty = all(st.state_size() == 0 for st in self._storages)
        self._stopped = False
        self._hosts = None
        if isolation == "process":
            from .isolation.process import ProcessNodes, safe_service  # only clusters that isolate load it
            self.service_class = safe_service(service_class)
            self._hosts = getattr(self.service_class, "raftkit_nodes", ProcessNodes)(self)  # KV: kvprocess.py
        self._watcher = _Watcher(self)
        if self.virtual:
            self.clock.on_yield = self._watcher.after_event
        try:
            for i in range(n):
                self._make_node(i)
            for i in range(n):  # every peer is wired before anyone can start an election
                self.nodes[i].start()
        except BaseException:
            self.stop()  # node processes, threads: nothing outlives a cluster that failed to start
            raise

    # ------------------------------------------------------------ plumbing
    def _make_node(self, i):
        self._incarnations[i] += 1
        service = self.service_class(i, self.snapshot_interval, self._watcher.on_apply, self.clock)
        rng_seed = f"{self.seed}/node{i}/{self._incarnations[i]}"
        if self._hosts is not None:  # the node runs in a process of its own
            node = self._hosts.make(i, service, self._storages[i], rng_seed)
        else:
            node = self.node_class(
                i, [j for j in range(self.n) if j != i], clock=self.clock, bus=self.bus,
                storage=self._storages[i], apply=service.apply, config=self.config,
                rng=random.Random(rng_seed), emit=self.recorder.record)
        service.node = node
        self.nodes[i], self.services[i], self._alive[i] = node, service, True
        self.clock.guard_lock(node.mu, f"node {i}'s lock self.mu")
        self.bus.register(i, node, service)

    def _check_all(self):
        if self.monitor is not None and self.virtual:
            for i in range(self.n):
                if self._alive[i]:
                    self.monitor.check(self.nodes[i])

    def _record(self, method, *args, **kwargs):
        self.actions.append(Action(self.clock.events, self.clock.now(), method, args, tuple(sorted(kwargs.items()))))

    def _node_id(self, i, name="node"):
        _check_int(name, i, 0, self.n - 1)
        return i

    def _usable(self):
        if self._stopped:
            raise RuntimeError("this cluster is stopped; make a new Cluster")
        failure = getattr(self.clock, "failure", None)
        if failure is not None:
            raise failure

    def _run(self, until=None, max_events=None) -> int:
        self._usable()
        self._check_all()
        return self.clock.run(until=until, max_events=max_events)

    # ---------------------------------------------------------------- time
    @property
    def now(self) -> float:
        """Seconds since the cluster started, on its clock."""
        return self.clock.now()

    @takes_turns
    def run_for(self, dt: float) -> None:
        """Let the cluster run for ``dt`` seconds of cluster time."""
        _check_seconds("dt", dt)
        if self.virtual:
            self._run(until=self.clock.now() + dt)
        else:
            self._usable()
            time.sleep(dt / self.clock.speed)
            self._usable()

    @takes_turns
    def step(self) -> Event | None:
        """Virtual clock only: run exactly one scheduler event (a timer
        firing, a message delivery or a reply) and return its event; None if
        nothing is pending."""
        if not self.virtual:
            raise RuntimeError('step() needs the virtual clock: Cluster(..., clock="virtual"); '
                               "under the real clock threads run freely, use run_for()")
        before = len(self.trace)
        if self._run(max_events=1) == 0:
            return None
        new = self.trace[before:]
        if new:
            return new[0]
        task = self.clock.last_task
        owner = getattr(task.owner, "id", None)
        return Event(self.clock.now(), "tick", owner, None, task.name)

    @takes_turns
    def run_until(self, pred: Callable[[Cluster], bool], timeout: float) -> bool:
        """Run until ``pred(cluster)`` is true (checked after every event) or
        ``timeout`` seconds of cluster time pass. Returns whether it became true."""
        if not callable(pred):
            raise TypeError(f"pred must be a callable taking the cluster, got {pred!r}")
        _check_seconds("timeout", timeout)
        deadline = self.clock.now() + timeout
        if not self.virtual:
            while True:
                self._usable()
                if pred(self):
                    return True
                if self.clock.now() >= deadline:
                    return False
                time.sleep(0.005)
        while True:
            if pred(self):
                return True
            if self.clock.now() >= deadline:
                return False
            self._run(until=deadline, max_events=1)

    # -------------------------------------------------------------- faults
    @takes_turns
    def crash(self, i: int) -> None:
        """Node i stops at once; only what it persisted survives."""
        self._node_id(i)
        self._usable()
        if not self._alive[i]:
            return
        node = self.nodes[i]
        self._record("crash", i)
        self.recorder.record("crash", i)
        self._alive[i] = False
        self.bus.unregister(i)
        self._storages[i].detach()  # later writes of the dead incarnation are lost
        self._storages[i] = self._storages[i].reopen()
        node.stop()
        self.clock.kill(node)
        self.clock.unguard_lock(node.mu)
        if self._hosts is not None:
            self._hosts.kill(i)  # its process really ends

    @takes_turns
    def restart(self, i: int) -> None:
        """A new incarnation of node i starts from its persisted state
        (crashing the current one first if it is alive)."""
        self._node_id(i)
        self._usable()
        self.crash(i)
        self._record("restart", i)
        self.recorder.record("restart", i)
        self._make_node(i)
        self.nodes[i].start()

    @takes_turns
    def disconnect(self, i: int) -> None:
        self._set_link(i, False)

    @takes_turns
    def connect(self, i: int) -> None:
        self._set_link(i, True)

    def _set_link(self, i, flag):
        self._node_id(i)
        self._usable()
        self.bus.connected[i] = flag
        self._record("connect" if flag else "disconnect", i)
        self.recorder.record("connect" if flag else "disconnect", i)

    @takes_turns
    def timeout_now(self, i: int) -> None:
        """Node i's election timer runs out: it starts an election at its
        timer's next check (RaftScope's "time out"), as if no leader had been
        heard from for the longest configured timeout. Only a live follower
        or candidate has a running timer; for others this raises ValueError."""
        self._node_id(i)
        self._usable()
        if not self._alive[i]:
            raise ValueError(f"node {i} is crashed: restart it first")
        node = self.nodes[i]
        with node.mu:
            if str(node.state) == "Leader":
                raise ValueError(f"node {i} is the leader: only followers and candidates have an election timer")
            self._record("timeout_now", i)
            self.recorder.record("timeout_now", i)
            node.election_reset_event = self.clock.now() - self.config.election_timeout[1]

    @takes_turns
    def drop_message(self, message_id: int) -> None:
        """Drop the message in flight with this id (see ``snapshot_state().messages``):
        its caller sees it lost when it would have arrived. ValueError if no
        such message is in flight."""
        _check_int("message_id", message_id, 1)
        self._usable()
        self.bus.cancel(message_id)
        self._record("drop_message", message_id)

    @takes_turns
    def partition(self, *groups) -> None:
        """``c.partition([0, 1], [2, 3, 4])``: links only inside a group;
        nodes in no group are isolated."""
        self._usable()
        seen = set()
        clean = []
        for g in groups:
            if not isinstance(g, (list, tuple, set, frozenset, range)):
                raise TypeError(f"each partition group must be a list of node ids, got {g!r}")
            grp = sorted(self._node_id(i, "node id in partition group") for i in g)
            if seen & set(grp):
                raise ValueError(f"node(s) {sorted(seen & set(grp))} appear in more than one group")
            seen |= set(grp)
            clean.append(grp)
        self.bus.partition(clean)
        self._record("partition", *clean)
        self.recorder.record("partition", None, None, " | ".join(str(g) for g in clean))

    @takes_turns
    def heal(self) -> None:
        """No partition, every node connected."""
        self._usable()
        self.bus.partition(None)
        self.bus.connected[:self.n] = [True] * self.n
        self._record("heal")
        self.recorder.record("heal")

    @takes_turns
    def set_reliable(self, flag: bool) -> None:
        """False: each request and each reply dropped with p=0.1, 0-26 ms extra delay."""
        if not isinstance(flag, bool):
            raise TypeError(f"set_reliable expects True or False, got {flag!r}")
        self.set_network(request_drop=0.0 if flag else 0.1, reply_drop=0.0 if flag else 0.1,
                         delay=(0.0, 0.0) if flag else (0.0, 0.026))

    @takes_turns
    def set_long_reordering(self, flag: bool) -> None:
        """True: 2/3 of replies delayed by 200-2200 ms."""
        if not isinstance(flag, bool):
            raise TypeError(f"set_long_reordering expects True or False, got {flag!r}")
        self.set_network(long_reordering=flag)

    @takes_turns
    def set_network(self, **knobs) -> None:
        """Finer control: ``request_drop``, ``reply_drop``, ``delay=(lo, hi)``,
        ``duplicate``, ``long_reordering``, ``unreachable_delay=(lo, hi)``."""
        self._usable()
        self.bus.net = self.bus.net.with_knobs(**knobs)
        self._record("set_network", **knobs)
        self.recorder.record("network", None, None, " ".join(f"{k}={v}" for k, v in sorted(knobs.items())))

    @property
    def network(self):
        """The current fault knobs (a frozen ``raftkit.bus.Network``)."""
        return self.bus.net

    def is_alive(self, i: int) -> bool:
        return self._alive[self._node_id(i)]

    def is_connected(self, i: int) -> bool:
        return self.bus.connected[self._node_id(i)]

    # -------------------------------------------------------------- client
    @takes_turns
    def submit(self, command: Any, node: int | None = None) -> tuple[int, int, bool]:
        """Like MIT's Start: ``(index, term, is_leader)`` at once. ``node=None``
        sends it to the current leader, if there is one."""
        self._usable()
        if type(command) not in IMMUTABLE_TYPES:  # nodes never share the caller's (mutable) object
            try:
                command = pickle.loads(pickle.dumps(command))
            except Exception as e:
                raise TypeError(f"commands must be picklable, got {type(command).__name__}: {e}") from None
        if node is None:
            node = self.leader()
            if node is None:
                return -1, max(self.get_state(i)[0] for i in range(self.n)), False
        self._node_id(node)
        self.actions.append(Action(self.clock.events, self.clock.now(), "submit", (command,), _NODE_KWARGS[node]))
        self.recorder.record_command("submit", node, None, command)
        if not self._alive[node]:
            return -1, self.nodes[node].current_term, False
        return self.nodes[node].submit(command)

    @takes_turns
    def leader(self) -> int | None:
        """The live node that claims leadership in the highest term, or None."""
        best = None
        for i in range(self.n):
            if self._alive[i]:
                term, is_leader = self.nodes[i].get_state()
                if is_leader and (best is None or term > best[0]):
                    best = (term, i)
        return None if best is None else best[1]

    @takes_turns
    def get_state(self, i: int) -> tuple[int, bool]:
        """``(term, is_leader)`` of node i; a crashed node: ``(last term, False)``."""
        self._node_id(i)
        if not self._alive[i]:
            return self.nodes[i].current_term, False
        return self.nodes[i].get_state()

    @takes_turns
    def applied(self, i: int) -> list[ApplyMsg]:
        """What node i's current incarnation delivered to its service, in order."""
        return list(self.services[self._node_id(i)].applied)

    @takes_turns
    def persisted_size(self, i: int) -> int:
        """Bytes of node i's persisted Raft state, snapshot excluded."""
        return self._storages[self._node_id(i)].state_size()

    # ------------------------------------------------------ harness checks
    def _fail(self, message):
        raise CheckFailed(f"{message} (seed={self.seed}, t={self.now:.3f}s)")

    def _on_net(self):
        return [i for i in range(self.n) if self._alive[i] and self.bus.connected[i]]

    @takes_turns
    def check_one_leader(self) -> int:
        """Wait (up to ~5 s, polling like MIT) for a leader among the
        connected nodes; fail if a term has two. Returns the leader of the
        highest term."""
        for _ in range(10):
            self.run_for(0.450 + self._harness_rng.uniform(0, 0.100))
            leaders: dict[int, list[int]] = {}
            for i in self._on_net():
                term, is_leader = self.nodes[i].get_state()
                if is_leader:
                    leaders.setdefault(term, []).append(i)
            for term, ids in leaders.items():
                if len(ids) > 1:
                    self._fail(f"term {term} has {len(ids)} (>1) leaders: {ids}")
            if leaders:
                return leaders[max(leaders)][0]
        self._fail("expected one leader, got none")

    @takes_turns
    def check_terms(self) -> int:
        """All connected nodes agree on the term; returns it."""
        terms = {self.nodes[i].get_state()[0] for i in self._on_net()}
        if len(terms) > 1:
            self._fail(f"servers disagree on term: {sorted(terms)}")
        return terms.pop() if terms else -1

    @takes_turns
    def check_no_leader(self) -> None:
        """No connected node thinks it is leader."""
        for i in self._on_net():
            if self.nodes[i].get_state()[1]:
                self._fail(f"expected no leader among connected servers, but {i} claims to be one")

    @takes_turns
    def n_committed(self, index: int) -> tuple[int, Any]:
        """How many nodes applied ``index``, and the command (fails if they differ)."""
        _check_int("index", index, 1)
        count, command = 0, None
        for i in range(self.n):
            commands = self.services[i].commands
            if index in commands:
                if count > 0 and commands[index] != command:
                    self._fail(f"committed values do not match: index {index} has {command!r} and {commands[index]!r}")
                count, command = count + 1, commands[index]
        return count, command

    @takes_turns
    def wait(self, index: int, n: int, start_term: int = -1):
        """Wait (~30 s, doubling polls) until ``n`` nodes applied ``index``.
        Returns the command, or -1 if some term moved past ``start_term``."""
        pause = 0.010
        for _ in range(30):
            if self.n_committed(index)[0] >= n:
                break
            self.run_for(pause)
            if pause < 1.0:
                pause *= 2
            if start_term > -1 and any(self.nodes[i].current_term > start_term
                                       for i in range(self.n) if self._alive[i]):
                return -1
        count, command = self.n_committed(index)
        if count < n:
            self._fail(f"only {count} decided for index {index}; wanted {n}")
        return command

    @takes_turns
    def one(self, command: Any, expected_servers: int, retry: bool = False) -> int:
        """Agree on ``command`` on at least ``expected_servers`` nodes, as
        MIT's ``one()``: 10 s overall, 2 s per attempt. Returns its index."""
        _check_int("expected_servers", expected_servers, 1, self.n)
        t0, starts = self.now, 0
        while self.now - t0 < 10 * ELECTION_TIMEOUT:
            index = -1
            for _ in range(self.n):  # round robin from server 1, as MIT's one()
                starts = (starts + 1) % self.n
                i = starts
                if self._alive[i] and self.bus.connected[i]:
                    idx, _, ok = self.submit(command, node=i)
                    if ok:
                        index = idx
                        break
            if index != -1:
                t1 = self.now
                while self.now - t1 < 2 * ELECTION_TIMEOUT:
                    count, cmd = self.n_committed(index)
                    if count > 0 and count >= expected_servers and cmd == command:
                        return index
                    self.run_for(0.020)
                if not retry:
                    self._fail(f"one({command!r:.40}) failed to reach agreement")
            else:
                self.run_for(0.050)
        self._fail(f"one({command!r:.40}) failed to reach agreement")

    # ----------------------------------------------------------- observing
    @property
    def trace(self) -> list[Event]:
        """Every event so far, in order (the live list: do not modify it)."""
        return self.recorder.events

    def rpc_count(self) -> int:
        """RPCs that reached a handler, summed over nodes."""
        return self.bus.rpc_count()

    def rpc_bytes(self) -> int:
        """Bytes carried: every request's args, plus each delivered reply."""
        return self.bus.bytes

    def trace_digest(self) -> str:
        """Hex digest of the canonical trace: equal for equal runs."""
        return self.recorder.digest()

    @takes_turns
    def snapshot_state(self) -> ClusterState:
        """An immutable picture of the cluster: nodes, messages in flight, links."""
        nodes = []
        for i, node in enumerate(list(self.nodes)):  # copies: under the real clock threads keep running
            nodes.append(NodeState(
                i, self._alive[i], self.bus.connected[i], str(node.state), node.current_term, node.voted_for,
                tuple(e.term for e in list(node.log)), node.last_included_index, node.commit_index,
                node.last_applied, tuple(sorted(dict(node.next_index).items())),
                tuple(sorted(dict(node.match_index).items())), node.election_reset_event, node.timeout,
                node.last_included_term))
        messages = tuple(Message(**vars(m)) for m in list(self.bus.in_flight.values()))
        group = self.bus.group
        partition = None if group is None else tuple(
            tuple(sorted(i for i, g in group.items() if g == k)) for k in sorted(set(group.values())))
        return ClusterState(self.now, tuple(nodes), messages, partition)

    def draw(self):
        """The current picture (graph + logs) as a matplotlib Figure."""
        from .viz.draw import figure  # viz sits above the cluster layer: imported on use
        return figure(self.snapshot_state())

    def show(self, **options):
        """A live ClusterWidget for this cluster (in Jupyter)."""
        from .viz.widget import show
        return show(self, **options)

    # -------------------------------------------------------------- replay
    def rerun(self, until: float | None = None, *, events: int | None = None) -> Cluster:
        """A new cluster with the same options that re-runs this one's
        recorded actions up to cluster time ``until`` (default: exactly
        where this one is now). Virtual clock only: the same seed and the
        same calls give the same run, so this is rewind (and, by acting on
        the copy, a fork of history). ``events=k`` stops instead right after
        the k-th scheduler event (just before the one that went wrong, say).
        A ``data_dir`` cluster reruns in memory, which behaves the same."""
        if not self.virtual:
            raise RuntimeError("rerun() needs the virtual clock: real-clock runs do not repeat")
        if not self._started_empty:
            raise RuntimeError("rerun() cannot rebuild a cluster that started from state recovered from data_dir")
        copy = type(self)(self.n, **dict(self.options, data_dir=None))
        try:
            copy.follow(self, until, events=events)
        except BaseException:
            copy.stop()
            raise
        return copy

    def follow(self, source: Cluster, until: float | None = None, *, events: int | None = None) -> None:
        """Go on along ``source``'s recorded future: re-apply the actions of
        ``source`` that this cluster (a rerun of it) has not done yet, up to
        cluster time ``until`` or scheduler event count ``events`` (default:
        where ``source`` is now)."""
        done = len(self.actions)
        if self.actions != source.actions[:done]:
            raise ValueError("follow() needs a cluster whose recorded actions are a prefix of the source's")
        if until is not None:
            _check_seconds("until", until)
        if events is not None:
            _check_int("events", events, 0)
        for a in source.actions[done:]:
            if (until is not None and a.time > until) or (events is not None and a.events > events):
                break
            self.advance_to(a.events, a.time)
            getattr(self, a.method)(*a.args, **dict(a.kwargs))
        if events is not None:
            self._run(max_events=max(0, events - self.clock.events))
        elif until is None or until >= source.now:
            self.advance_to(source.clock.events, source.now)
        else:
            self._run(until=until)

    @takes_turns
    def advance_to(self, events: int, time: float) -> None:
        """Virtual clock: run until exactly ``events`` scheduler events have
        run in all and the time is ``time`` (a point this run passed through)."""
        self._run(until=time, max_events=max(0, events - self.clock.events))

    # ------------------------------------------------------------ lifetime
    @property
    def stopped(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stopped

    def stop(self) -> None:
        """Stop every thread of the cluster. Never hangs; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._when_dropped.detach()
        self.clock.stop()
        if self._hosts is not None:
            self._hosts.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        head = (f"Cluster(n={self.n}, seed={self.seed}, clock={'virtual' if self.virtual else 'real'}, "
                f"t={self.now:.3f}s)")
        rows = [" node  state      term  voted  last  commit  applied  link"]
        for i, node in enumerate(self.nodes):
            state = str(node.state) if self._alive[i] else "crashed"
            voted = "-" if node.voted_for is None else node.voted_for
            link = "up" if self.bus.connected[i] else "down"
            rows.append(f" {i:>4}  {state:<9} {node.current_term:>5}  {voted!s:>5}  "
                        f"{node.last_included_index + len(node.log):>4}  {node.commit_index:>6}  "
                        f"{node.last_applied:>7}  {link}")
        return "\n".join([head] + rows)
