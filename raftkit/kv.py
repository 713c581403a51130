"""A replicated key/value service on Raft, with exactly-once clerks.

Every operation, reads included, goes through the Raft log: a read served
from a leader's local state could be stale (that leader may have been
deposed without knowing it). A clerk numbers its operations (client id,
sequence number) and retries until some leader answers; the state machine
remembers each client's last sequence number and result, so a retried
operation is applied once and answered with its original result.

    KVStore    the state machine: data + the deduplication table
    KVService  a node's service: applies committed ops, answers clerks
    Clerk      finds the leader, retries, records the history
"""

from __future__ import annotations

import pickle
import threading
import weakref
from dataclasses import dataclass

from .service import Service

__all__ = ["KVOp", "KVArgs", "KVReply", "KVStore", "KVService", "Clerk", "History", "HistoryEntry",
           "OK", "ERR_WRONG_LEADER", "ERR_TIMEOUT", "ClerkTimeout"]

OK, ERR_WRONG_LEADER, ERR_TIMEOUT = "OK", "ErrWrongLeader", "ErrTimeout"
KINDS = ("get", "put", "append")


@dataclass(frozen=True)
class KVOp:
    """The command a KV server puts in the Raft log."""
    client_id: int
    seq: int
    kind: str
    key: str
    value: str | None = None


KVArgs = KVOp  # the clerk's RPC carries the operation itself


@dataclass(frozen=True)
class KVReply:
    err: str
    value: str | None = None


class ClerkTimeout(TimeoutError):
    """No server answered the operation in time. It may or may not have
    been applied; a later operation of the same clerk is still safe."""


class KVStore:
    """The state machine. ``apply`` returns the operation's result: get ->
    the value ("" if absent), put -> None, append -> the new value."""

    def __init__(self):
        self.data: dict[str, str] = {}
        self.last: dict[int, tuple[int, str | None]] = {}  # client -> (seq, result)

    def apply(self, op: KVOp):
        seen = self.last.get(op.client_id)
        if seen is not None and op.seq <= seen[0]:
            # A duplicate (a retry): never applied twice; the original result if it is the latest.
            return seen[1] if op.seq == seen[0] else None
        if op.kind == "get":
            result = self.data.get(op.key, "")
        elif op.kind == "put":
            self.data[op.key] = op.value
            result = None
        else:
            result = self.data[op.key] = self.data.get(op.key, "") + op.value
        self.last[op.client_id] = (op.seq, result)
        return result

    def dump(self) -> bytes:
        return pickle.dumps((self.data, self.last), protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, data: bytes) -> None:
        self.data, self.last = pickle.loads(data) if data else ({}, {})


class KVService(Service):
    """A node's KV server. ``kv_request`` is the RPC a clerk calls: it puts
    the operation in the log and waits (bounded) until it is applied."""

    request_timeout = 0.5  # seconds a server waits for its entry to commit

    def __init__(self, node_id, snapshot_interval=None, on_apply=None, clock=None):
        super().__init__(node_id, snapshot_interval, on_apply, clock)
        self.store = KVStore()
        self.waiting: dict[int, list] = {}  # log index -> channels of waiting requests
        self.mu = threading.Lock()          # guards `waiting` (real clock: handler vs applier)

    def execute(self, index, command):
        result = self.store.apply(command) if isinstance(command, KVOp) else None
        with self.mu:
            channels = self.waiting.pop(index, [])
        for ch in channels:
            ch.try_send((getattr(command, "client_id", None), getattr(command, "seq", None), result))

    def dump(self):
        return self.store.dump()

    def restore(self, data):
        self.store.load(data)
        self.commands = {}

    def kv_request(self, op: KVOp) -> KVReply:
        index, _, is_leader = self.node.submit(op)
        if not is_leader:
            return KVReply(ERR_WRONG_LEADER)
        ch = self.clock.channel(1)
        with self.mu:
            self.waiting.setdefault(index, []).append(ch)
        applied, ok = ch.recv(timeout=self.request_timeout)
        if not ok:
            with self.mu:
                if ch in self.waiting.get(index, ()):
                    self.waiting[index].remove(ch)
            return KVReply(ERR_TIMEOUT)
        client_id, seq, result = applied
        if (client_id, seq) != (op.client_id, op.seq):
            return KVReply(ERR_WRONG_LEADER)  # another leader's entry took that index
        return KVReply(OK, result)


class History(list):
    """The operations clients saw, in the order they happened. ``stamp``
    gives strictly increasing times: under the virtual clock a client can
    call an operation at the very instant another one returned, and the
    checker must still see which came first."""

    last = float("-inf")

    def stamp(self, now: float) -> float:
        self.last = now if now > self.last else self.last + 1e-9
        return self.last


@dataclass
class HistoryEntry:
    """One client operation as the client saw it; ``ret`` None = no answer."""
    client_id: int
    kind: str
    key: str
    value: str | None
    call: float
    output: str | None = None
    ret: float | None = None


class Clerk:
    """A KV client. From a notebook cell, ``put``/``get``/``append`` run the
    cluster until the operation completes; from a thread started on the
    cluster's clock they block that thread, like a real client."""

    def __init__(self, cluster, client_id: int, *, timeout: float = 10.0, history=None):
        self._cluster = weakref.ref(cluster)  # a clerk must not keep a dropped cluster running
        self.client_id, self.timeout = client_id, timeout
        self.history = history if history is not None else History()
        self.endpoint = cluster.bus.add_client(self)
        self.seq = 0
        self.leader = 0

    @property
    def cluster(self):
        cluster = self._cluster()
        if cluster is None:
            raise RuntimeError(f"client {self.client_id}'s cluster no longer exists: "
                               "keep a reference to the KVCluster while you use its clerks")
        return cluster

    def get(self, key: str) -> str:
        return self._do("get", key, None)

    def put(self, key: str, value: str) -> None:
        self._do("put", key, value)

    def append(self, key: str, value: str) -> str:
        return self._do("append", key, value)

    def _do(self, kind, key, value):
        if not isinstance(key, str) or (kind != "get" and not isinstance(value, str)):
            raise TypeError(f"{kind}() takes string keys and values, got key={key!r} value={value!r}")
        clock = self.cluster.clock
        if clock.in_node_thread():
            return self.request(kind, key, value)
        out = {}

        def run():
            try:
                out["value"] = self.request(kind, key, value)
            except ClerkTimeout as e:
                out["error"] = e

        clock.go(run, owner=self, name=f"client {self.client_id}: {kind}")
        if not self.cluster.run_until(lambda c: bool(out), self.timeout + 1.0):
            clock.kill(self)  # one operation at a time per clerk: end this one for good
            raise ClerkTimeout(f"client {self.client_id}: {kind}({key!r}) did not finish; "
                               "it may or may not have been applied")
        if "error" in out:
            raise out["error"]
        return out["value"]

    def request(self, kind, key, value):
        """Send one operation until a leader answers (blocks the calling node thread)."""
        cluster = self.cluster
        clock, bus, n = cluster.clock, cluster.bus, cluster.n
        self.seq += 1
        args = KVOp(self.client_id, self.seq, kind, key, value)
        entry = HistoryEntry(self.client_id, kind, key, value, self.history.stamp(clock.now()))
        self.history.append(entry)
        deadline = clock.now() + self.timeout
        tried = 0
        # checked before every try: an operation never outlives its timeout by more than one try
        while clock.now() < deadline:
            reply = bus.call(self.endpoint, self.leader, "kv_request", args)
            if reply is not None and reply.err == OK:
                entry.output, entry.ret = reply.value, self.history.stamp(clock.now())
                return reply.value
            self.leader = (self.leader + 1) % n
            tried += 1
            if tried % n == 0:
                clock.sleep(0.050)  # nobody leads right now: give an election time
        raise ClerkTimeout(f"client {self.client_id}: {kind}({key!r}) got no answer in {self.timeout} s; "
                           "it may or may not have been applied")
