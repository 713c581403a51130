"""The in-memory RPC network, in the manner of MIT's labrpc.

Every call is its own journey: the caller's thread sleeps for the request's
network delay, the handler runs on the receiver (on a copy of the args), the
caller sleeps for the reply's delay and gets a copy of the reply, or ``None``
if anything was lost. Liveness and links are checked when the request is
delivered and again when the reply arrives, so a crash or a partition in
between loses the message. Args and replies travel serialized
(``messages.encode``): no object is ever shared between nodes, and the byte
counter is exact.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields, replace

from .messages import decode, encode, summarize

__all__ = ["Bus", "Network", "Message"]

_LONG_REORDER_P = 600 / 900  # labrpc: 2/3 of replies delayed 200..2200 ms


def _probability(name, p):
    if not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {p!r}")


def _seconds_range(name, r):
    if (not isinstance(r, tuple) or len(r) != 2 or not all(isinstance(v, (int, float)) for v in r)
            or not 0 <= r[0] <= r[1]):
        raise ValueError(f"{name} must be a (low, high) tuple of seconds with 0 <= low <= high, got {r!r}")


@dataclass(frozen=True)
class Network:
    """Fault knobs. ``delay`` is extra one-way delay on top of
    ``Config.rpc_delay``; ``duplicate`` is the probability that a request is
    delivered twice; ``unreachable_delay`` is how long a call to an
    unreachable peer takes to fail."""

    request_drop: float = 0.0
    reply_drop: float = 0.0
    delay: tuple = (0.0, 0.0)
    duplicate: float = 0.0
    long_reordering: bool = False
    unreachable_delay: tuple = (0.0, 0.1)

    def __post_init__(self):
        for name in ("request_drop", "reply_drop", "duplicate"):
            _probability(name, getattr(self, name))
        _seconds_range("delay", self.delay)
        _seconds_range("unreachable_delay", self.unreachable_delay)
        if not isinstance(self.long_reordering, bool):
            raise TypeError(f"long_reordering must be True or False, got {self.long_reordering!r}")

    def with_knobs(self, **knobs) -> Network:
        known = {f.name for f in fields(self)}
        unknown = set(knobs) - known
        if unknown:
            raise TypeError(f"unknown network knob(s) {sorted(unknown)}; expected some of {sorted(known)}")
        return replace(self, **knobs)


@dataclass
class Message:
    """A message in flight, for drawing: a request, or the reply to it."""

    id: int
    src: int
    dst: int
    method: str
    summary: str
    sent: float
    arrive: float
    phase: str = "request"      # "request" | "reply"
    reply: str = ""
    success: bool | None = None  # replies: vote_granted / success, if any


class Client:
    """What the bus knows of a client endpoint: a name, and no handlers."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"<client {self.name}>"


class Bus:
    """Links ``n`` endpoints. ``trace`` records events; ``on_handler(i)`` is
    told whenever node i's handler ran (the safety monitor uses it)."""

    def __init__(self, n, clock, rng, trace, rpc_delay, on_handler=None):
        self.n, self.clock, self.rng, self.trace = n, clock, rng, trace
        self.rpc_delay = rpc_delay
        self.on_handler = on_handler
        self.endpoints = [None] * n
        self.connected = [True] * n
        self.group = None              # node -> group number, while partitioned
        self.net = Network()
        self.handled = [0] * n         # RPCs that reached node i's handler
        self.bytes = 0
        self.in_flight: dict[int, Message] = {}
        self.cancelled: set[int] = set()   # ids dropped by hand (cancel), until their arrival time
        self._ids = itertools.count(1)

    # -- topology ----------------------------------------------------------
    def register(self, i, *objects):
        """Node i answers RPCs with the methods of ``objects`` (its Raft
        module first, then its service), until unregistered."""
        self.endpoints[i] = objects

    def unregister(self, i):
        self.endpoints[i] = None

    def add_client(self, obj) -> int:
        """A client endpoint (a KV clerk): it calls servers but serves no RPC,
        so the bus keeps only its name (not the client, nor what the client
        holds: a dropped cluster must be collectable). A client in no
        partition group reaches every node."""
        self.endpoints.append((Client(type(obj).__name__),))
        self.connected.append(True)
        self.handled.append(0)
        return len(self.endpoints) - 1

    def reachable(self, a, b) -> bool:
        """True iff a message between a and b gets through now."""
        if self.endpoints[a] is None or self.endpoints[b] is None:
            return False
        if not (self.connected[a] and self.connected[b]):
            return False
        g = self.group
        if g is None:
            return True
        ga, gb = g.get(a, -1 if a >= self.n else None), g.get(b, -1 if b >= self.n else None)
        return ga == -1 or gb == -1 or (ga is not None and ga == gb)

    def partition(self, groups):
        """``groups``: list of lists of node ids, or None to heal."""
        self.group = None if groups is None else {i: k for k, grp in enumerate(groups) for i in grp}

    # -- calls -------------------------------------------------------------
    def call(self, src: int, dst: int, method: str, args):
        """Send ``args`` to ``dst``'s handler ``method``; returns a copy of the
        reply, or None if the request or reply was lost. Blocks the caller
        (in simulated time) for the round trip."""
        reply = self.call_encoded(src, dst, method, encode(args), summarize(args))
        return None if reply is None else decode(*reply)

    def call_encoded(self, src: int, dst: int, method: str, packet: tuple, summary: str):
        """``call`` for a request already serialized (``messages.encode``)
        and summarized: returns the reply's packet, or None if lost. A node
        in another process calls through here, so that its messages are
        never decoded outside it."""
        clock, rng, net = self.clock, self.rng, self.net
        self.bytes += len(packet[0])
        caller, target = self.endpoints[src], self.endpoints[dst]
        msg = Message(next(self._ids), src, dst, method, summary, clock.now(), 0.0)
        self.trace.record("send", src, dst, summary)
        try:
            if not self.reachable(src, dst):
                # labrpc: a call to an unreachable peer fails only after a while
                return self._lose(msg, "unreachable", rng.uniform(*net.unreachable_delay))
            msg.arrive = clock.now() + self._delay()
            self.in_flight[msg.id] = msg
            clock.sleep_until(msg.arrive, label="deliver")
            if msg.id in self.cancelled:
                return None
            if not self.reachable(src, dst) or self.endpoints[dst] is not target:
                return self._drop(msg, "request lost: link down or node crashed")
            if net.request_drop and rng.random() < net.request_drop:
                return self._drop(msg, "request dropped by the network")
            if net.duplicate and rng.random() < net.duplicate:
                clock.go(self._deliver_copy, src, dst, method, packet, target, summary,
                         owner=caller[0], name=f"node {src}: duplicate {method}")
            rpacket, msg.reply, msg.success = self._handle(dst, target, method, packet, summary, src)
            msg.phase = "reply"
            msg.sent, msg.arrive = clock.now(), clock.now() + self._delay(reply_leg=True)
            clock.sleep_until(msg.arrive, label="reply")
            if msg.id in self.cancelled:
                return None
            if (not self.reachable(src, dst) or self.endpoints[dst] is not target
                    or self.endpoints[src] is not caller):
                return self._drop(msg, "reply lost: link down or node crashed")
            if net.reply_drop and rng.random() < net.reply_drop:
                return self._drop(msg, "reply dropped by the network")
            self.bytes += len(rpacket[0])
            self.trace.record("reply", dst, src, msg.reply)
            return rpacket
        finally:
            self.in_flight.pop(msg.id, None)  # also when the caller is killed mid-call
            self.cancelled.discard(msg.id)

    def cancel(self, message_id: int) -> Message:
        """Drop the message in flight with this id (a request, or the reply
        to it) now: it leaves ``in_flight`` and its caller gets ``None`` at
        the time it would have arrived, as for any lost message. Raises
        ValueError if no message with this id is in flight."""
        msg = self.in_flight.pop(message_id, None)
        if msg is None:
            raise ValueError(f"no message {message_id!r} in flight (delivered, answered or lost already)")
        self.cancelled.add(message_id)
        src, dst = (msg.src, msg.dst) if msg.phase == "request" else (msg.dst, msg.src)
        self.trace.record("drop", src, dst, f"{msg.method} {msg.phase}: dropped by hand")
        return msg

    def _handle(self, dst, target, method, packet, summary, src):
        """Run the handler; returns (reply packet, reply summary, success)."""
        self.handled[dst] += 1
        self.trace.record("deliver", dst, src, summary)
        remote = getattr(target[0], "handle_encoded", None)  # a node in its own process
        if remote is not None:
            answer = remote(method, packet)
        else:
            handler = next((getattr(o, method) for o in target if hasattr(o, method)), None)
            if handler is None:
                raise TypeError(f"node {dst} ({', '.join(type(o).__name__ for o in target)}) "
                                f"has no RPC handler {method!r}")
            reply = handler(decode(*packet))
            answer = (encode(reply), summarize(reply) if reply is not None else "None",
                      getattr(reply, "vote_granted", getattr(reply, "success", None)))
        if self.on_handler is not None:
            self.on_handler(dst)
        return answer

    def _deliver_copy(self, src, dst, method, packet, target, summary):
        self.clock.sleep(self._delay(), label="deliver")
        if self.reachable(src, dst) and self.endpoints[dst] is target:
            self.trace.record("duplicate", dst, src, summary)
            self._handle(dst, target, method, packet, summary, src)

    def _delay(self, reply_leg=False) -> float:
        rng, net = self.rng, self.net
        d = rng.uniform(*self.rpc_delay)
        if net.delay[1] > 0:
            d += rng.uniform(*net.delay)
        if reply_leg and net.long_reordering and rng.random() < _LONG_REORDER_P:
            d += 0.2 + rng.uniform(0, rng.uniform(0, 2.0))  # labrpc: 200 + rand(rand(2000)) ms
        return d

    def _lose(self, msg, why, after):
        msg.arrive = self.clock.now() + after
        self.in_flight[msg.id] = msg
        self.clock.sleep(after, label="fail")
        return None if msg.id in self.cancelled else self._drop(msg, why)

    def _drop(self, msg, why):
        self.trace.record("drop", msg.src, msg.dst, f"{msg.method}: {why}")
        return None

    def rpc_count(self) -> int:
        return sum(self.handled)
