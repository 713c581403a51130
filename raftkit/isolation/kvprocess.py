"""The trusted side of an isolated KV cluster (exercise 7).

A KV store class and a clerk class are loaded only in node processes (a
template, ``kvhost.py``). This side keeps, as for any isolated cluster, the
scheduler, the bus, storage and the safety monitor, and also:

* ``HostedKVService``: each server's twin. It records what its node applies
  (the order checks, the trace, the monitor), never runs the store, never
  unpickles a snapshot; the store's data is read from the node's process.
* ``HostedClerk``: a clerk whose ``request`` runs in a process of its own.
  Its calls may reach servers only (``kv_request``), and the result it
  returns must be one a server gave it for that very operation (same
  client, kind, key and value) during that request: a clerk cannot make up
  an answer, so the history recorded here at the request's boundary holds
  only what servers said.
* ``HostedStore``: a bare store in a process of its own (white-box checks).

``hosted_kv(spec)`` gives the (store, clerk) stand-ins that scenarios use in
place of the classes; ``kv_spec(store, clerk)`` names importable classes.
"""

from __future__ import annotations

import socket
import threading
import types
import weakref

from ..clock import Killed, VirtualClock
from ..errors import NodeError
from ..kv import OK, Clerk, ClerkTimeout, HistoryEntry, KVOp, KVReply, KVStore
from ..messages import decode, encode
from ..service import Service
from . import wire
from .process import (
    _STARTUP,
    NodeHost,
    NodeProxy,
    ProcessNodes,
    _check,
    _Remote,
    _text,
    class_spec,
    hosted_class,
    template_for,
)

__all__ = ["HostedKVService", "HostedClerk", "HostedStore", "KVProcessNodes", "hosted_kv", "kv_spec",
           "kv_options", "log_disagrees"]


def kv_spec(store_class: type, clerk_class: type) -> tuple:
    """How a template loads importable store and clerk classes."""
    return ("load", "raftkit.isolation.kvhost", "load_kv", (class_spec(store_class), class_spec(clerk_class)))


def kv_options(spec, sandbox=None, kit=None, predict: bool = False) -> dict:
    """``KVCluster`` options for servers whose store is loaded by ``spec``
    (node processes run the kit's Raft with the KV service around it;
    ``predict``: as ``hosted_class``'s)."""
    return {"node_class": hosted_class(spec, "ConsensusModule", sandbox, kit, predict),
            "service_class": HostedKVService}


def hosted_kv(spec, sandbox=None, kit=None, names=("KVStore", "Clerk"), predict: bool = False) -> tuple[type, type]:
    """(store, clerk) stand-ins for classes that exist only in node
    processes: ``store()`` is a ``HostedStore``, ``clerk(kv, id, ...)`` a
    ``HostedClerk``; ``kv_options(store.raftkit_spec, ...)`` makes servers
    (``predict``: their clusters predict, as ``hosted_class``'s)."""
    extra = {"raftkit_spec": spec, "raftkit_sandbox": sandbox, "raftkit_kit": kit, "raftkit_predict": predict,
             "__module__": __name__}
    return (type(names[0], (HostedStore,), dict(extra, __doc__=f"{names[0]}, loaded only in node processes")),
            type(names[1], (HostedClerk,), dict(extra, __doc__=f"{names[1]}, loaded only in node processes")))


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------

class _Orphaned(Killed):
    """A handler's twin woke after its node's process was killed (a crash
    while ``kv_request`` waited for its entry)."""


class _ServerTwin(NodeHost):
    """A KV server's host. Its ``kv_request`` handler blocks, so a crash can
    come while a caller's twin waits in it: in one process that handler
    would go on until its wait ends and its reply be lost with the node;
    here the twin waits the same, then ends the handler (``_Orphaned``)
    without writing to the dead process: its descriptor, closed at the
    kill, is a grave whose writes fail, never a number that the next
    incarnation's socket may reuse."""

    def job(self, what: str, payload=None):
        if what == "handle" and payload[0] == "kv_request":
            what = "serve"  # a handler that blocks: a thread of its own in the host (kvhost.KVHost)
        return super().job(what, payload)

    def _request(self, op, args):
        value = super()._request(op, args)
        if self.sock is None:
            raise _Orphaned()
        return value

    def kill(self) -> None:
        alive = self.sock is not None
        super().kill()
        if alive:
            self._grave, other = socket.socketpair()
            other.close()
            self.fd = self._grave.fileno()


class _ServerProxy(NodeProxy):
    def handle_encoded(self, method: str, packet: tuple):
        try:
            return super().handle_encoded(method, packet)
        except _Orphaned:
            return encode(None), "None", None  # the bus loses it: the node crashed


class KVProcessNodes(ProcessNodes):
    """The node processes of a KV cluster, and its clerks' processes."""

    def __init__(self, cluster, sandbox=None):
        super().__init__(cluster, sandbox)
        self.clerks: list[NodeHost] = []

    def make(self, i: int, service, storage, rng_seed: str):
        c = self.cluster
        peers = [j for j in range(c.n) if j != i]
        proxy = _ServerProxy(i, peers, "ConsensusModule")
        host = _ServerTwin(self, i, service, storage, proxy)
        proxy.__dict__["_host"] = host
        self.hosts[i] = host
        host.timeout = max(self.timeout, _STARTUP)  # a new process on a loaded machine: its first answer
        try:
            host.job("construct", ("node", i, peers, c.config, rng_seed, storage.read_state(),
                                   storage.read_snapshot(), service.host_snapshot_interval))
        finally:
            host.timeout = self.timeout
        return proxy

    def close(self) -> None:
        super().close()
        for host in self.clerks:
            host.kill()


class HostedKVService(Service):
    """A KV server's twin on the trusted side: it records its node's apply
    stream (order checks, trace, monitor) and nothing more. The snapshot
    interval goes to the node's process, whose service makes snapshots;
    a snapshot's bytes (the store's ``dump``) are never read here."""

    raftkit_nodes = KVProcessNodes

    def __init__(self, node_id, snapshot_interval=None, on_apply=None, clock=None):
        super().__init__(node_id, None, on_apply, clock)
        self.host_snapshot_interval = snapshot_interval

    def restore(self, data: bytes) -> None:
        self.commands = {}

    @property
    def store(self):
        """The node's store, in its process (``.data`` is read from there)."""
        return _Remote(self.node._host, ("kv_service", "store"))


# --------------------------------------------------------------------------
# Clerks
# --------------------------------------------------------------------------

class _Named(NodeHost):
    """A host that is not a node: its failures name what it is."""

    who = "a process"
    runs_ahead = False  # nothing is predicted for it: each of its turns is a round trip, best on one core

    def _fail(self, error):
        if error is None:
            error = NodeError(f"{self.who}'s process {self.template.status(self.pid)} (its last request: {self.last})")
        elif error.args and isinstance(error.args[0], str):
            error.args = (error.args[0].replace(f"node {self.i}", self.who, 1),) + error.args[1:]
        return super()._fail(error)


class _ClerkTwin(_Named):
    """The connection to a clerk's process: its calls may reach servers'
    kv_request only, it applies, saves and records nothing; it notes what
    servers answered it."""

    def __init__(self, nodes, clerk: HostedClerk):
        self.who = f"client {clerk.client_id}"
        super().__init__(nodes, clerk.endpoint, None, None, clerk)
        self.servers = nodes.cluster.n
        self.client_id = clerk.client_id
        self.asked = None          # (kind, key, value) of the request running
        self.answers: list = []    # what servers answered it, this request

    def _request(self, op, args):
        if op != "call":
            _check(op != "apply", "a clerk applies nothing")
            return super()._request(op, args)
        _check(len(args) == 5 and type(args[0]) is int and 0 <= args[0] < self.servers
               and args[1] == "kv_request", "a clerk calls servers' kv_request only")
        rpacket = super()._request(op, args)
        if rpacket is not None:
            self._heard(args[2], rpacket)
        return rpacket

    def _heard(self, packet, rpacket) -> None:
        """Note the answer, if it is an OK to this clerk's request in progress."""
        try:
            op, reply = decode(*packet, loads=wire.safe_loads), decode(*rpacket, loads=wire.safe_loads)
        except (wire.ProtocolError, TypeError, ValueError, IndexError, KeyError):
            return  # nothing a server could have answered as asked
        if (type(op) is KVOp and type(reply) is KVReply and reply.err == OK and op.client_id == self.client_id
                and self.asked == (op.kind, op.key, op.value)):
            self.answers.append((reply.value, op.seq))

    def _post(self, msg):
        _check(len(msg) == 4 and msg[2] not in ("save", "emit", "apply"),
               "a clerk saves nothing, applies nothing and writes no events")
        super()._post(msg)

    def _mirror(self, report):
        _check(report is None, "a clerk has no node state to report")


class HostedClerk(Clerk):
    """A clerk whose code runs in a process of its own (its class is the
    one the cluster's template loaded). ``request`` is recorded here, at its
    boundary, with the result the clerk returned, which must be an answer a
    server gave it for that operation."""

    def __init__(self, cluster, client_id: int, *, timeout: float = 10.0, history=None):
        super().__init__(cluster, client_id, timeout=timeout, history=history)
        self.answered: list = []  # (kind, key, value, result, seqs a server answered it for), see log_disagrees
        nodes = cluster._hosts
        if not isinstance(nodes, KVProcessNodes):
            raise TypeError("a hosted clerk works with a KVCluster whose servers run in node processes")
        self.mu = threading.Lock()  # what a lock report would take (a clerk guards none)
        self._twin = _ClerkTwin(nodes, self)
        nodes.clerks.append(self._twin)
        self._twin.timeout = max(nodes.timeout, _STARTUP)
        try:
            self._twin.job("construct", ("clerk", self.endpoint, client_id, cluster.n, timeout))
        finally:
            self._twin.timeout = nodes.timeout

    def request(self, kind, key, value):
        clock = self.cluster.clock
        entry = HistoryEntry(self.client_id, kind, key, value, self.history.stamp(clock.now()))
        self.history.append(entry)
        twin = self._twin
        twin.asked, twin.answers = (kind, key, value), []
        try:
            answer = twin.job("call", (("request",), (kind, key, value), {}))
        finally:
            twin.asked = None
        if not (isinstance(answer, tuple) and len(answer) == 2 and answer[0] in ("value", "timeout")):
            raise NodeError(f"client {self.client_id}: its process answered {answer!r:.80} to request()")
        if answer[0] == "timeout":
            raise ClerkTimeout(_text(answer[1], "a timeout's text"))
        result = answer[1]
        seqs = tuple(seq for a, seq in twin.answers if type(a) is type(result) and a == result)
        if not seqs:
            heard = ", ".join(repr(a) for a, _ in twin.answers[:3]) or "nothing"
            raise NodeError(f"client {self.client_id}: request({kind!r}, {key!r}, {value!r}) returned {result!r:.80}, "
                            f"which no server answered it (servers answered this operation: {heard}); a clerk "
                            "returns the value of a server's OK reply to the operation it sent")
        self.answered.append((kind, key, value, result, seqs))
        entry.output, entry.ret = result, self.history.stamp(clock.now())
        return result

    def __repr__(self):
        return f"<{type(self).__name__} {self.client_id} (own process)>"


def log_disagrees(kv) -> str | None:
    """Why an answer a hosted clerk returned is not what the log the servers
    agreed on gives for that operation (None: every answer is). The log is
    the safety monitor's (what the nodes applied, index by index, agreed
    between them); it is replayed through the kit's ``KVStore`` here. So a
    server that answers without committing the operation, or answers
    something else than the state machine gives, is caught even if its
    answers happen to make a linearizable history."""
    applied = getattr(kv.monitor, "applied", None)
    if applied is None:
        return None  # invariants not checked: nothing to compare with
    store, results = KVStore(), {}
    try:
        for index in sorted(applied):
            op = applied[index]
            if type(op) is KVOp:
                results.setdefault((op.client_id, op.seq), []).append(store.apply(op))
    except Exception as e:  # an operation no clerk of the kit's could have sent
        return f"the log the servers agreed on cannot be replayed ({type(e).__name__}: {str(e)[:200]})"
    for clerk in kv.clerks:
        for kind, key, value, result, seqs in getattr(clerk, "answered", ()):
            got = [r for seq in seqs for r in results.get((clerk.client_id, seq), ())]
            if result not in got:
                args = f"{key!r}" + ("" if value is None else f", {value!r}")
                return (f"client {clerk.client_id}'s {kind}({args}) was answered {result!r}, but the log the servers "
                        + (f"agreed on gives {got[0]!r} for it" if got else "applied does not hold it at all")
                        + ": a server answers with what its state machine returned for the committed operation")
    return None


# --------------------------------------------------------------------------
# A bare store
# --------------------------------------------------------------------------

class _StoreTwin(_Named):
    """The connection to a bare store's process: it may ask for nothing."""

    who = "the store"

    def _request(self, op, args):
        raise wire.ProtocolError(f"a store cannot ask for {op[:50]!r}")

    def _post(self, msg):
        raise wire.ProtocolError("a store cannot post")

    def _mirror(self, report):
        _check(report is None, "a store has no node state to report")


class HostedStore:
    """A store object in a process of its own: its methods run there, its
    fields are read from there. ``timeout``: wall seconds it may take to
    answer."""

    raftkit_spec = raftkit_sandbox = raftkit_kit = None
    timeout = 5.0

    def __init__(self):
        cls = type(self)
        template = template_for(cls.raftkit_spec, cls.raftkit_sandbox, kit=cls.raftkit_kit)
        bench = types.SimpleNamespace(clock=VirtualClock(), bus=None, recorder=None)
        nodes = types.SimpleNamespace(cluster=bench, timeout=cls.timeout, template=template, predict=False)
        twin = _StoreTwin(nodes, 0, None, None, types.SimpleNamespace(mu=threading.Lock()))
        self.__dict__["_twin"] = twin
        weakref.finalize(self, twin.kill)
        twin.timeout = max(cls.timeout, _STARTUP)
        try:
            twin.job("construct", ("store",))
        finally:
            twin.timeout = cls.timeout

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self._twin.get_path((name,))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} lives in another process: set {name} from its own methods")

    def close(self) -> None:
        self._twin.kill()

    def __repr__(self):
        return f"<{type(self).__name__} (own process)>"
