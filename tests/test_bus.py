"""The RPC bus: every fault knob has an observable effect, and bad input is refused.

Two levels:

* Direct ``raftkit.bus.Bus`` tests drive fake nodes (plain objects with
  handler methods) from threads started with ``clock.go(...)`` on a
  ``VirtualClock``, then ``clock.run(until=...)``. Timing is exact there, so
  each knob can be pinned down message by message.
* Cluster-level tests check that the same knobs, reached through the public
  ``Cluster`` API (``set_network``, ``partition``, ``disconnect``, ``crash``
  ...), show up in the trace, the counters and ``snapshot_state()``.

Trace events of the bus: ``send`` (node=caller, peer=callee), ``deliver``
(node=callee, peer=caller), ``duplicate`` (node=callee), ``reply``
(node=callee, peer=caller) and ``drop`` (node=caller, peer=callee).
"""

from __future__ import annotations

import pickle
import random
import threading

import pytest

import raftkit
from raftkit.bus import Bus, Network
from raftkit.clock import VirtualClock
from raftkit.messages import (
    AppendEntriesArgs,
    AppendEntriesReply,
    ApplyMsg,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    LogEntry,
    RequestVoteArgs,
    RequestVoteReply,
    decode,
    encode,
)
from raftkit.trace import Trace

SEEDS = [1, 2]
RPC_DELAY = (0.001, 0.005)   # Config().rpc_delay
EPS = 1e-9


# ------------------------------------------------------------ direct harness
class FakeNode:
    """A node with two RPC handlers; it remembers what it was sent."""

    def __init__(self, id, clock):
        self.id, self.clock = id, clock
        self.calls = []  # (time, args) as the handler saw them

    def echo(self, args):
        self.calls.append((self.clock.now(), args))
        return {"from": self.id, "args": args, "count": len(self.calls)}

    def keep(self, args):
        """Mutates its copy of the args and returns the very object it keeps."""
        args["seen_by"] = self.id
        self.calls.append((self.clock.now(), args))
        return args


class Outcome:
    def __init__(self):
        self.start = self.end = None
        self.reply = None
        self.done = False

    @property
    def elapsed(self):
        return self.end - self.start


class Net:
    """A Bus over fake nodes on a virtual clock."""

    def __init__(self, n=3, seed=0, rpc_delay=RPC_DELAY, **knobs):
        self.clock = VirtualClock()
        self.trace = Trace(self.clock.now)
        self.handled = []
        self.bus = Bus(n, self.clock, random.Random(seed), self.trace, rpc_delay,
                       on_handler=self.handled.append)
        self.nodes = [FakeNode(i, self.clock) for i in range(n)]
        for i, node in enumerate(self.nodes):
            self.bus.register(i, node)
        if knobs:
            self.bus.net = self.bus.net.with_knobs(**knobs)

    def call(self, src, dst, args, method="echo") -> Outcome:
        """Start ``bus.call`` on a thread owned by node ``src``."""
        out = Outcome()

        def run():
            out.start = self.clock.now()
            out.reply = self.bus.call(src, dst, method, args)
            out.end = self.clock.now()
            out.done = True

        self.clock.go(run, owner=self.nodes[src], name=f"node {src}: call {method} -> {dst}")
        return out

    def run(self, until=None):
        self.clock.run(until=until)

    def events(self, kind=None):
        return [e for e in self.trace.events if kind is None or e.kind == kind]


@pytest.fixture
def make_net():
    """Builds ``Net``s and stops their clocks (and threads) afterwards."""
    nets = []

    def make(**kw):
        net = Net(**kw)
        nets.append(net)
        return net

    yield make
    for net in nets:
        net.clock.stop()
    alive = [t.name for net in nets for t in net.clock.threads()]
    assert not alive, f"bus test threads still running after clock.stop(): {alive}"


def nbytes(obj) -> int:
    return len(encode(obj)[0])


# ------------------------------------------------------------ direct: basics
def test_call_delivers_a_copy_and_returns_a_copy(make_net):
    """A successful call runs the handler once on the receiver and returns
    its reply; the round trip takes two legs of Config.rpc_delay, and the
    trace shows send, deliver, reply in that order."""
    net = make_net()
    out = net.call(0, 1, {"x": 1})
    net.run()
    assert out.done and out.reply == {"from": 1, "args": {"x": 1}, "count": 1}, f"reply {out.reply!r}"
    assert len(net.nodes[1].calls) == 1 and net.handled == [1], "the handler must run exactly once, on node 1"
    assert 2 * RPC_DELAY[0] - EPS <= out.elapsed <= 2 * RPC_DELAY[1] + EPS, f"round trip took {out.elapsed}"
    kinds = [(e.kind, e.node, e.peer) for e in net.events()]
    assert kinds == [("send", 0, 1), ("deliver", 1, 0), ("reply", 1, 0)], f"trace {kinds}"


def test_args_are_copied_both_ways(make_net):
    """No object is shared between nodes: mutating the args after the call
    started does not change what the handler receives; the handler's
    mutation of its copy does not leak back into the caller's object; and
    the caller's reply is a copy of what the handler kept."""
    net = make_net(rpc_delay=(0.1, 0.1))
    args = {"items": [1, 2]}
    out = net.call(0, 1, args, method="keep")
    net.run(until=0.05)  # the request is on the wire
    args["items"].append(3)
    args["late"] = True
    net.run()
    (_, seen), = net.nodes[1].calls
    assert seen == {"items": [1, 2], "seen_by": 1}, f"handler saw {seen}, not the args as they were sent"
    assert seen is not args, "the handler got the caller's own object"
    assert "seen_by" not in args, f"the handler's mutation leaked into the caller's args: {args}"
    assert out.reply == seen and out.reply is not seen, "the reply must be an equal copy"
    out.reply["items"].append(99)
    assert seen["items"] == [1, 2], "mutating the reply changed the handler's object"


def test_handler_runs_at_delivery_time_within_rpc_delay(make_net):
    """Each leg takes Config.rpc_delay (no extra delay configured): the
    handler runs rpc_delay after the send, the reply arrives rpc_delay later."""
    net = make_net(seed=3)
    outs = [net.call(i % 3, (i + 1) % 3, {"i": i}) for i in range(60)]
    net.run()
    sends = {(e.node, e.peer, e.detail): e.time for e in net.events("send")}
    for e in net.events("deliver"):
        gap = e.time - sends[(e.peer, e.node, e.detail)]
        assert RPC_DELAY[0] - EPS <= gap <= RPC_DELAY[1] + EPS, f"request leg {gap} outside {RPC_DELAY}"
    for out in outs:
        assert 2 * RPC_DELAY[0] - EPS <= out.elapsed <= 2 * RPC_DELAY[1] + EPS, f"round trip {out.elapsed}"


# ------------------------------------------------------------ direct: knobs
def test_request_drop_handler_not_run_caller_gets_none(make_net):
    """request_drop=1: the request never reaches the handler, the caller
    gets None after the request leg, and the trace records the drop."""
    net = make_net(request_drop=1.0)
    out = net.call(0, 1, {"x": 1})
    net.run()
    assert out.done and out.reply is None, f"caller got {out.reply!r}, want None"
    assert net.nodes[1].calls == [] and net.bus.rpc_count() == 0, "the handler ran for a dropped request"
    assert RPC_DELAY[0] - EPS <= out.elapsed <= RPC_DELAY[1] + EPS, f"failure came after {out.elapsed}"
    kinds = [(e.kind, e.node, e.peer) for e in net.events()]
    assert kinds == [("send", 0, 1), ("drop", 0, 1)], f"trace {kinds}"
    assert "request dropped" in net.events("drop")[0].detail


def test_reply_drop_handler_ran_caller_gets_none(make_net):
    """reply_drop=1: the handler runs (its effects happen) but the caller
    gets None; the trace shows deliver, then the drop."""
    net = make_net(reply_drop=1.0)
    out = net.call(0, 1, {"x": 1})
    net.run()
    assert out.done and out.reply is None, f"caller got {out.reply!r}, want None"
    assert len(net.nodes[1].calls) == 1 and net.bus.rpc_count() == 1, "the handler must have run once"
    assert 2 * RPC_DELAY[0] - EPS <= out.elapsed <= 2 * RPC_DELAY[1] + EPS, f"failure came after {out.elapsed}"
    kinds = [(e.kind, e.node, e.peer) for e in net.events()]
    assert kinds == [("send", 0, 1), ("deliver", 1, 0), ("drop", 0, 1)], f"trace {kinds}"
    assert "reply dropped" in net.events("drop")[0].detail


@pytest.mark.parametrize("seed", SEEDS)
def test_drop_probabilities_are_roughly_honoured(make_net, seed):
    """request_drop=reply_drop=0.5: of 400 calls about half the requests
    are dropped and about half of the rest lose their reply (binomial
    bounds far beyond 5 sigma)."""
    net = make_net(seed=seed, request_drop=0.5, reply_drop=0.5)
    outs = [net.call(0, 1 + i % 2, {"i": i}) for i in range(400)]
    net.run()
    handled = net.bus.rpc_count()
    ok = sum(o.reply is not None for o in outs)
    assert all(o.done for o in outs), f"seed={seed}: some calls never returned"
    assert 140 <= handled <= 260, f"seed={seed}: {handled}/400 requests reached a handler, want ~200"
    assert 0.3 * handled <= ok <= 0.7 * handled, f"seed={seed}: {ok}/{handled} replies arrived, want ~half"


@pytest.mark.parametrize("seed", SEEDS)
def test_extra_delay_adds_to_rpc_delay(make_net, seed):
    """delay=(lo, hi) adds to each leg: every delivery happens within
    [rpc_delay.lo + lo, rpc_delay.hi + hi] after the send, and so does
    every reply after the delivery."""
    lo, hi = 0.010, 0.020
    net = make_net(seed=seed, delay=(lo, hi))
    outs = [net.call(0, 1, {"i": i}) for i in range(50)]
    net.run()
    leg = (RPC_DELAY[0] + lo - EPS, RPC_DELAY[1] + hi + EPS)
    sends = {e.detail: e.time for e in net.events("send")}
    delivers = {e.detail: e.time for e in net.events("deliver")}
    replies = sorted(e.time for e in net.events("reply"))
    assert len(delivers) == 50 and len(replies) == 50, f"seed={seed}: not every call completed"
    for detail, t in delivers.items():
        assert leg[0] <= t - sends[detail] <= leg[1], f"seed={seed}: request leg {t - sends[detail]} outside {leg}"
    for out in outs:
        assert 2 * leg[0] <= out.elapsed <= 2 * leg[1], f"seed={seed}: round trip {out.elapsed} outside 2x{leg}"
    assert max(o.elapsed for o in outs) > 2 * RPC_DELAY[1], f"seed={seed}: the extra delay had no effect"


def test_duplicate_runs_the_handler_twice(make_net):
    """duplicate=1: the request is delivered twice (the handler runs twice,
    rpc_count counts both), the caller still gets exactly one reply, and
    the trace records the duplicate."""
    net = make_net(duplicate=1.0)
    out = net.call(0, 1, {"x": 1})
    net.run()
    assert out.done and out.reply is not None, f"caller got {out.reply!r}"
    assert [args for _, args in net.nodes[1].calls] == [{"x": 1}, {"x": 1}], (
        f"handler calls {net.nodes[1].calls}, want the same args twice")
    assert net.bus.rpc_count() == 2 and net.handled == [1, 1], f"rpc_count {net.bus.rpc_count()}, want 2"
    assert len(net.events("duplicate")) == 1 and len(net.events("reply")) == 1, [str(e) for e in net.events()]


def test_no_duplicate_by_default(make_net):
    """With the default network every handler runs once per call."""
    net = make_net()
    for i in range(30):
        net.call(0, 1, {"i": i})
    net.run()
    assert net.bus.rpc_count() == 30 and not net.events("duplicate"), f"rpc_count {net.bus.rpc_count()}"


@pytest.mark.parametrize("seed", SEEDS)
def test_long_reordering_delays_two_thirds_of_replies(make_net, seed):
    """long_reordering=True: about 2/3 of replies are delayed by 200-2200
    ms on top of rpc_delay (labrpc), requests are not; with it off no reply
    takes 200 ms. Replies therefore arrive out of order."""
    net = make_net(seed=seed, long_reordering=True)
    outs = [net.call(0, 1, {"i": i}) for i in range(300)]
    net.run()
    delivers = {e.detail: e.time for e in net.events("deliver")}
    sends = {e.detail: e.time for e in net.events("send")}
    for detail, t in delivers.items():
        assert t - sends[detail] <= RPC_DELAY[1] + EPS, f"seed={seed}: a request leg took {t - sends[detail]}"
    round_trips = [o.elapsed for o in outs]  # the request leg is <= 5 ms, so >= 200 ms means a slow reply
    slow = [d for d in round_trips if d >= 0.2]
    assert 0.55 * 300 <= len(slow) <= 0.78 * 300, f"seed={seed}: {len(slow)}/300 replies delayed >= 200 ms, want ~200"
    assert max(round_trips) <= 2.2 + 2 * RPC_DELAY[1] + EPS, f"seed={seed}: a round trip took {max(round_trips)}"
    order = [o.reply["args"]["i"] for o in sorted(outs, key=lambda o: o.end)]
    assert order != sorted(order), f"seed={seed}: replies arrived in order despite long reordering"

    net2 = make_net(seed=seed)
    outs2 = [net2.call(0, 1, {"i": i}) for i in range(100)]
    net2.run()
    assert max(o.elapsed for o in outs2) < 0.2, f"seed={seed}: a reply was delayed without long_reordering"


# ------------------------------------------------------------ direct: topology
def test_partition_links_only_inside_a_group(make_net):
    """partition([[0, 1], [2]]) over 4 nodes: 0<->1 works, 0<->2 does not,
    3 (in no group) reaches nobody; heal (None) restores every link."""
    net = make_net(n=4)
    net.bus.partition([[0, 1], [2]])
    pairs = [(a, b) for a in range(4) for b in range(4) if a != b]
    ok = {(a, b) for a, b in pairs if net.bus.reachable(a, b)}
    assert ok == {(0, 1), (1, 0)}, f"reachable pairs under partition: {sorted(ok)}"
    outs = {(a, b): net.call(a, b, {"p": (a, b)}) for a, b in pairs}
    net.run()
    got = {p for p, o in outs.items() if o.reply is not None}
    assert got == {(0, 1), (1, 0)}, f"calls that succeeded under partition: {sorted(got)}"
    assert [args["p"] for _, args in net.nodes[3].calls] == [], "an isolated node received a request"

    net.bus.partition(None)
    assert all(net.bus.reachable(a, b) for a, b in pairs), "heal must restore every link"


def test_disconnect_and_connect(make_net):
    """A disconnected node neither sends nor receives; reconnecting it
    restores both directions."""
    net = make_net()
    net.bus.connected[1] = False
    out_to, out_from, out_other = net.call(0, 1, {}), net.call(1, 2, {}), net.call(0, 2, {})
    net.run()
    assert out_to.reply is None and out_from.reply is None, "a disconnected node's link worked"
    assert out_other.reply is not None, "the link between two connected nodes must work"
    assert net.nodes[1].calls == [] and len(net.nodes[2].calls) == 1
    net.bus.connected[1] = True
    out_to, out_from = net.call(0, 1, {}), net.call(1, 2, {})
    net.run()
    assert out_to.reply is not None and out_from.reply is not None, "reconnecting must restore the links"


def test_partition_during_flight_loses_the_request(make_net):
    """Links are checked when the request is delivered: a partition that
    appears while the request is on the wire loses it."""
    net = make_net(rpc_delay=(0.1, 0.1))
    out = net.call(0, 1, {})
    net.run(until=0.05)
    net.bus.partition([[0], [1, 2]])
    net.run()
    assert out.reply is None and net.nodes[1].calls == [], "a request crossed a partition"
    assert "request lost" in net.events("drop")[0].detail


@pytest.mark.parametrize("target", ["unregistered", "disconnected", "partitioned"])
def test_unreachable_peer_fails_after_a_delay(make_net, target):
    """A call to a crashed (unregistered), disconnected or partitioned-off
    peer returns None after a delay drawn from unreachable_delay (labrpc:
    0-100 ms), not instantly, so a leader that calls peers one after the
    other visibly stalls."""
    net = make_net(seed=5)
    if target == "unregistered":
        net.bus.unregister(1)
    elif target == "disconnected":
        net.bus.connected[1] = False
    else:
        net.bus.partition([[0], [1, 2]])
    outs = [net.call(0, 1, {"i": i}) for i in range(50)]
    net.run()
    lo, hi = Network().unreachable_delay
    times = [o.elapsed for o in outs]
    assert all(o.done and o.reply is None for o in outs), "an unreachable call succeeded or never returned"
    assert all(t > 0 for t in times), f"some calls failed instantly: {sorted(times)[:3]}"
    assert all(lo - EPS <= t <= hi + EPS for t in times), f"failure delays outside {lo, hi}: {min(times)}, {max(times)}"
    assert max(times) > hi / 2, f"failure delays do not spread over {lo, hi}: max {max(times)}"
    assert net.bus.rpc_count() == 0 and len(net.events("drop")) == 50


def test_unreachable_delay_knob(make_net):
    """unreachable_delay=(lo, hi) sets how long a failing call blocks."""
    net = make_net(unreachable_delay=(0.5, 0.6))
    net.bus.connected[2] = False
    outs = [net.call(0, 2, {}) for _ in range(20)]
    net.run()
    assert all(0.5 - EPS <= o.elapsed <= 0.6 + EPS for o in outs), sorted(o.elapsed for o in outs)


# ------------------------------------------------------------ direct: crashes
def test_reply_from_crashed_node_is_lost(make_net):
    """Node 1 handles the request, then crashes while its reply is on the
    wire: the reply is lost (caller gets None), although the handler ran."""
    net = make_net(rpc_delay=(0.1, 0.1))
    out = net.call(0, 1, {"x": 1})
    net.run(until=0.15)  # delivered at 0.1, reply due at 0.2
    assert len(net.nodes[1].calls) == 1, "the request should have been delivered at t=0.1"
    net.bus.unregister(1)  # what Cluster.crash does to the bus
    net.run()
    assert out.done and out.reply is None, f"a crashed node's reply arrived: {out.reply!r}"
    assert "reply lost" in net.events("drop")[-1].detail, [str(e) for e in net.events()]
    assert not net.events("reply"), "no reply event for a lost reply"


def test_reply_from_old_incarnation_is_lost(make_net):
    """Node 1 handles a request, then restarts (a new object registered
    under the same id) before its reply arrives: the old incarnation's
    reply is lost. A request sent to the old incarnation is lost too."""
    net = make_net(rpc_delay=(0.1, 0.1))
    out_reply = net.call(0, 1, {"x": 1})
    net.run(until=0.15)
    out_request = net.call(2, 1, {"y": 2})  # due at 0.25, at the old incarnation
    net.run(until=0.16)
    new = FakeNode(1, net.clock)
    net.bus.register(1, new)  # restart: same id, new incarnation
    net.run()
    assert out_reply.reply is None, f"the old incarnation's reply arrived: {out_reply.reply!r}"
    assert out_request.reply is None and new.calls == [], "a request to the old incarnation reached the new one"
    details = [e.detail for e in net.events("drop")]
    assert any("reply lost" in d for d in details) and any("request lost" in d for d in details), details
    out = net.call(0, 1, {"z": 3})
    net.run()
    assert out.reply is not None and len(new.calls) == 1, "the new incarnation must answer new calls"


def test_crashed_caller_gets_nothing_and_leaves_no_message_in_flight(make_net):
    """When the calling node is killed mid-call its thread ends (it never
    sees a reply) and the message leaves bus.in_flight."""
    net = make_net(rpc_delay=(0.1, 0.1))
    out = net.call(0, 1, {"x": 1})
    net.run(until=0.05)
    assert len(net.bus.in_flight) == 1, "the request should be in flight"
    net.bus.unregister(0)
    net.clock.kill(net.nodes[0])
    net.run()
    assert not out.done, "a killed caller's thread went on running"
    assert net.bus.in_flight == {}, f"messages left in flight: {net.bus.in_flight}"
    assert net.nodes[1].calls == [], "a crashed caller's request was still delivered"


# ------------------------------------------------------------ wire format
WIRE_CASES = [
    AppendEntriesArgs(3, 1, 5, 2, [LogEntry(2, "a"), LogEntry(3, {"k": [1, 2]})], 4),
    AppendEntriesArgs(3, 1, 5, 2, [], 4),
    AppendEntriesReply(3, False, 4, 2),
    RequestVoteArgs(1, 2, 3, 4),
    RequestVoteReply(3, True),
    InstallSnapshotArgs(1, 2, 3, 4, b"state"),
    InstallSnapshotReply(5),
]


@pytest.mark.parametrize("message", WIRE_CASES, ids=lambda m: type(m).__name__)
def test_raft_messages_travel_compact_and_come_back_equal(message):
    data, compact = encode(message)
    copy = decode(data, compact)
    assert compact, "a Raft message should take the compact form"
    assert copy == message and type(copy) is type(message) and copy is not message
    assert len(data) < len(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)) / 2
    for got, sent in zip(getattr(copy, "entries", []), getattr(message, "entries", [])):
        assert type(got) is LogEntry and got == sent and got is not sent


class MyArgs(AppendEntriesArgs):
    """A student's subclass: it must arrive as itself."""


@pytest.mark.parametrize("message", [
    {"x": 1}, None, ("a", 1),
    AppendEntriesArgs(3, 1, 5, 2, [(2, "a")], 4),   # entries that are not LogEntry
    MyArgs(3, 1, 5, 2, [], 4),
], ids=repr)
def test_anything_else_travels_pickled_as_it_is(message):
    data, compact = encode(message)
    copy = decode(data, compact)
    assert not compact
    assert copy == message and type(copy) is type(message)


# ------------------------------------------------------------ direct: counters
def test_rpc_count_and_rpc_bytes(make_net):
    """rpc_count counts only requests that reached a handler; rpc_bytes
    counts every request's serialized args (also dropped and unreachable
    ones) plus each reply that was delivered."""
    net = make_net()
    args = {"payload": "x" * 100}
    ok = net.call(0, 1, args)
    net.run()
    net.bus.net = net.bus.net.with_knobs(request_drop=1.0)
    req_dropped = net.call(0, 1, args)
    net.run()
    net.bus.net = net.bus.net.with_knobs(request_drop=0.0, reply_drop=1.0)
    rep_dropped = net.call(0, 1, args)
    net.run()
    net.bus.net = net.bus.net.with_knobs(reply_drop=0.0)
    net.bus.connected[2] = False
    unreachable = net.call(0, 2, args)
    net.run()
    assert ok.reply is not None and req_dropped.reply is rep_dropped.reply is unreachable.reply is None
    assert net.bus.rpc_count() == 2, f"rpc_count {net.bus.rpc_count()}, want 2 (ok + reply dropped)"
    reply_bytes = nbytes(ok.reply)
    want = 4 * nbytes(args) + reply_bytes
    assert net.bus.bytes == want, f"rpc bytes {net.bus.bytes}, want 4 requests x {nbytes(args)} + {reply_bytes}"


def test_every_call_is_traced(make_net):
    """Every call has a send event, and ends in exactly one reply or drop
    event; every handler run has a deliver event."""
    net = make_net(seed=9, request_drop=0.3, reply_drop=0.3)
    net.bus.connected[2] = False
    outs = [net.call(i % 3, (i + 1) % 3, {"i": i}) for i in range(90)]
    net.run()
    assert len(net.events("send")) == 90
    assert len(net.events("reply")) + len(net.events("drop")) == 90, "each call ends in one reply or drop"
    assert len(net.events("reply")) == sum(o.reply is not None for o in outs)
    assert len(net.events("deliver")) == net.bus.rpc_count() == sum(len(n.calls) for n in net.nodes)


# ------------------------------------------------------------ direct: bad input
@pytest.mark.parametrize("knobs, exc", [
    ({"bogus": 1}, TypeError),
    ({"request_drop": 1.5}, ValueError),
    ({"reply_drop": -0.1}, ValueError),
    ({"duplicate": 2}, ValueError),
    ({"request_drop": "0.5"}, ValueError),
    ({"delay": (0.2, 0.1)}, ValueError),
    ({"delay": (-0.1, 0.1)}, ValueError),
    ({"delay": 0.1}, ValueError),
    ({"unreachable_delay": (1, 0)}, ValueError),
    ({"long_reordering": "yes"}, TypeError),
])
def test_network_rejects_bad_knobs(knobs, exc):
    """Network.with_knobs refuses unknown knobs (TypeError) and bad values."""
    with pytest.raises(exc):
        Network().with_knobs(**knobs)


# ------------------------------------------------------------ cluster level
def pairs_after(c, t, kinds=("deliver", "reply")):
    """(node, peer) of bus events of ``kinds`` at or after time t."""
    return [(e.node, e.peer) for e in c.trace if e.time >= t and e.kind in kinds]


def test_cluster_trace_is_a_list_of_events():
    """API.md: ``c.trace`` is a "list of raftkit.Event": it can be
    iterated, indexed and sliced like a list, in time order."""
    with raftkit.Cluster(3, seed=1) as c:
        c.check_one_leader()
        trace = c.trace
        assert len(trace) > 0
        events = list(trace)  # iterable
        assert events[0] == trace[0] and trace[-1] == events[-1], "indexing must match iteration"
        assert list(trace[:3]) == events[:3], "slicing must work like a list's"
        assert all(isinstance(e, raftkit.Event) for e in events)
        assert [e.time for e in events] == sorted(e.time for e in events), "events must be in time order"


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_request_and_reply_drop(seed):
    """Through set_network: request_drop=1 stops every handler (rpc_count
    frozen, no leader can be elected), reply_drop=1 lets handlers run but
    no reply gets through; back to 0, the cluster recovers."""
    with raftkit.Cluster(3, seed=seed) as c:
        c.set_network(request_drop=1.0)
        c.run_for(1.0)
        assert c.rpc_count() == 0, f"seed={seed}: {c.rpc_count()} requests reached a handler"
        assert c.leader() is None, f"seed={seed}: a leader was elected without any messages"
        drops = [e for e in c.trace if e.kind == "drop"]
        assert drops and all("request dropped" in e.detail for e in drops), f"seed={seed}: drops {drops[:3]}"

        c.set_network(request_drop=0.0, reply_drop=1.0)
        t = c.now
        c.run_for(1.0)
        assert c.rpc_count() > 0, f"seed={seed}: no handler ran with only replies dropped"
        assert not [e for e in c.trace if e.time >= t and e.kind == "reply"], f"seed={seed}: a reply got through"
        assert c.leader() is None, f"seed={seed}: no candidate can learn of its votes"

        c.set_network(reply_drop=0.0)
        c.check_one_leader()


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_set_reliable_false(seed):
    """set_reliable(False) drops ~10% of requests and replies and adds up
    to 26 ms: drops show up in the trace, yet agreement is still reached;
    set_reliable(True) stops the drops."""
    with raftkit.Cluster(3, seed=seed) as c:
        c.set_reliable(False)
        c.one("a", 3, retry=True)
        c.run_for(2.0)
        details = [e.detail for e in c.trace if e.kind == "drop"]
        assert any("request dropped" in d for d in details), f"seed={seed}: no request dropped"
        assert any("reply dropped" in d for d in details), f"seed={seed}: no reply dropped"
        c.set_reliable(True)
        # A call keeps the knobs it was sent under (as in labrpc): let the
        # calls already under way (round trip <= 2 x 31 ms) finish first.
        c.run_for(0.1)
        t = c.now
        c.run_for(1.0)
        assert not [e for e in c.trace if e.time > t and e.kind == "drop"], f"seed={seed}: drops while reliable"


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_delay_shows_in_flight(seed):
    """set_network(delay=(0.1, 0.2)): every request in flight is due
    between rpc_delay.lo + 0.1 and rpc_delay.hi + 0.2 after it was sent
    (seen in snapshot_state), and deliveries lag sends accordingly."""
    with raftkit.Cluster(3, seed=seed) as c:
        c.check_one_leader()
        c.set_network(delay=(0.1, 0.2))
        t_set = c.now
        lo, hi = c.config.rpc_delay[0] + 0.1, c.config.rpc_delay[1] + 0.2
        seen = 0
        for _ in range(40):
            c.run_for(0.025)
            for m in c.snapshot_state().messages:
                if m.sent >= t_set and c.is_connected(m.src) and c.is_connected(m.dst):
                    assert lo - EPS <= m.arrive - m.sent <= hi + EPS, (
                        f"seed={seed}: {m.phase} {m.method} {m.src}->{m.dst} takes {m.arrive - m.sent}")
                    seen += 1
        assert seen > 10, f"seed={seed}: only {seen} messages seen in flight"


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_duplicate(seed):
    """set_network(duplicate=1): every delivered request is handled twice
    (duplicate events, rpc_count counts both), and Raft still agrees."""
    with raftkit.Cluster(3, seed=seed) as c:
        c.set_network(duplicate=1.0)
        c.one("d", 3)
        dups = [e for e in c.trace if e.kind == "duplicate"]
        delivers = [e for e in c.trace if e.kind == "deliver"]
        assert dups, f"seed={seed}: no duplicate delivered"
        assert c.rpc_count() == len(delivers) >= 2 * len(dups), (
            f"seed={seed}: rpc_count {c.rpc_count()}, delivers {len(delivers)}, duplicates {len(dups)}")


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_long_reordering(seed):
    """set_long_reordering(True): some replies in flight are due >= 200 ms
    after they left (seen in snapshot_state); none with it off."""
    with raftkit.Cluster(3, seed=seed) as c:
        c.check_one_leader()

        def reply_legs(duration):
            legs = []
            for _ in range(int(duration / 0.02)):
                c.run_for(0.02)
                legs += [m.arrive - m.sent for m in c.snapshot_state().messages if m.phase == "reply"]
            return legs

        assert max(reply_legs(0.5), default=0) < 0.2, f"seed={seed}: a slow reply without long reordering"
        c.set_long_reordering(True)
        legs = reply_legs(1.0)
        assert any(d >= 0.2 for d in legs), f"seed={seed}: no reply delayed >= 200 ms: {sorted(legs)[-3:]}"
        c.set_long_reordering(False)
        c.one("after", 3, retry=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_partition(seed):
    """c.partition([0, 1], [2, 3]) over 5 nodes: after it, every delivery
    and reply is inside a group and node 4 (in no group) hears nothing; no
    group holds a majority of 3, so nobody becomes leader of a newer term;
    heal() restores every link and a single leader emerges."""
    with raftkit.Cluster(5, seed=seed) as c:
        leader = c.check_one_leader()
        leader_term = c.get_state(leader)[0]
        c.partition([0, 1], [2, 3])
        t = c.now
        assert c.snapshot_state().partition == ((0, 1), (2, 3)), c.snapshot_state().partition
        c.run_for(1.5)
        group = {0: 0, 1: 0, 2: 1, 3: 1}
        for node, peer in pairs_after(c, t):
            assert node in group and peer in group and group[node] == group[peer], (
                f"seed={seed}: a message crossed the partition: {node}<->{peer}")
        assert all(4 not in p for p in pairs_after(c, t)), f"seed={seed}: isolated node 4 exchanged messages"
        leaders = [(i, c.get_state(i)) for i in range(5) if c.get_state(i)[1]]
        assert all(term == leader_term for _, (term, _) in leaders), (
            f"seed={seed}: a minority group elected a leader: {leaders} (old leader term {leader_term})")
        c.heal()
        assert c.snapshot_state().partition is None and all(c.is_connected(i) for i in range(5))
        c.check_one_leader()
        c.one("healed", 5)


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_disconnect_connect(seed):
    """c.disconnect(i): from then on no delivery or reply involves i, and
    is_connected says so; c.connect(i) brings its traffic back."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader = c.check_one_leader()
        f = (leader + 1) % 3
        c.disconnect(f)
        t = c.now
        assert not c.is_connected(f) and c.is_alive(f)
        c.run_for(1.0)
        assert all(f not in p for p in pairs_after(c, t)), f"seed={seed}: disconnected {f} exchanged messages"
        unreachable = [e for e in c.trace if e.time >= t and e.kind == "drop" and "unreachable" in e.detail]
        assert unreachable, f"seed={seed}: calls to {f} should fail as unreachable"
        c.connect(f)
        t = c.now
        c.run_for(0.5)
        assert any(f in p for p in pairs_after(c, t)), f"seed={seed}: reconnected {f} gets no traffic"


def _step_until(c, pred, limit=5000):
    for _ in range(limit):
        if pred():
            return True
        c.step()
    return pred()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("how", ["crash", "restart"])
def test_cluster_crash_loses_in_flight_reply(seed, how):
    """A follower whose reply is on the wire crashes (or restarts, i.e.
    crashes and comes back as a new incarnation): that reply is lost, the
    trace shows the drop, and the leader never gets it."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader = c.check_one_leader()
        f = (leader + 1) % 3

        def reply_in_flight():
            return [m for m in c.snapshot_state().messages if m.phase == "reply" and m.dst == f]

        assert _step_until(c, lambda: bool(reply_in_flight())), f"seed={seed}: no reply from {f} ever in flight"
        (msg,) = reply_in_flight()[:1]
        t = c.now
        getattr(c, how)(f)
        c.run_for(0.1)
        lost = [e for e in c.trace if e.time >= t and e.kind == "drop" and e.node == msg.src
                and e.peer == f and "reply lost" in e.detail]
        assert lost, f"seed={seed}: the in-flight reply of {how}ed {f} was not dropped"
        arrived = [e for e in c.trace if abs(e.time - msg.arrive) < EPS and e.kind == "reply"
                   and e.node == f and e.peer == msg.src]
        assert not arrived, f"seed={seed}: the reply from {f} arrived after the {how}: {arrived}"


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_calls_to_crashed_node_fail_after_a_delay(seed):
    """After c.crash(f) the leader's calls to f are neither delivered nor
    failed at once: they sit in flight for 0-100 ms (unreachable_delay)
    and then end in an "unreachable" drop."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader = c.check_one_leader()
        f = (leader + 1) % 3
        c.crash(f)
        t = c.now
        waits = []
        for _ in range(50):
            c.run_for(0.01)
            waits += [m.arrive - m.sent for m in c.snapshot_state().messages if m.dst == f and m.sent >= t]
        assert waits and all(0 < w <= 0.1 + EPS for w in waits), (
            f"seed={seed}: calls to crashed {f} should fail after (0, 100 ms], in flight: {sorted(waits)[:3]}...")
        drops = [e for e in c.trace if e.time > t and e.kind == "drop" and e.peer == f]
        # calls already under way at the crash end as "lost"; every later one as "unreachable"
        assert any("unreachable" in e.detail for e in drops), f"seed={seed}: no unreachable drop: {drops[:2]}"
        assert all("unreachable" in e.detail or "lost" in e.detail for e in drops), f"seed={seed}: {drops}"
        assert all(f not in p for p in pairs_after(c, t)), f"seed={seed}: crashed {f} exchanged messages"


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_restarted_node_reachable_iff_connected(seed):
    """Liveness and links are independent: a node disconnected, crashed
    and restarted stays disconnected (no traffic); connecting it brings
    the new incarnation's traffic."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader = c.check_one_leader()
        f = (leader + 1) % 3
        c.disconnect(f)
        c.crash(f)
        assert not c.is_alive(f) and not c.is_connected(f)
        c.restart(f)
        t = c.now
        assert c.is_alive(f) and not c.is_connected(f)
        c.run_for(1.0)
        assert all(f not in p for p in pairs_after(c, t)), f"seed={seed}: restarted but disconnected {f} got traffic"
        c.connect(f)
        t = c.now
        c.run_for(0.5)
        assert any(f in p for p in pairs_after(c, t)), f"seed={seed}: connected restarted {f} gets no traffic"
        c.one("back", 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_counters_and_trace_agree(seed):
    """On an unreliable network with a disconnection: rpc_count equals the
    number of deliver events; every send ended in a reply or a drop, or is
    still in flight; rpc_bytes only grows."""
    with raftkit.Cluster(3, seed=seed) as c:
        c.set_reliable(False)
        c.run_for(1.0)
        c.disconnect(1)
        b0 = c.rpc_bytes()
        c.run_for(1.0)
        c.connect(1)
        c.run_for(0.5)
        assert c.rpc_bytes() > b0 > 0, f"seed={seed}: rpc_bytes did not grow: {b0} -> {c.rpc_bytes()}"
        kinds = [e.kind for e in c.trace]
        assert c.rpc_count() == kinds.count("deliver"), f"seed={seed}: rpc_count {c.rpc_count()} != delivers"
        in_flight = len(c.snapshot_state().messages)
        assert kinds.count("send") == kinds.count("reply") + kinds.count("drop") + in_flight, (
            f"seed={seed}: sends {kinds.count('send')} != replies {kinds.count('reply')} + drops "
            f"{kinds.count('drop')} + in flight {in_flight}")


def test_cluster_rpc_bytes_counts_dropped_requests():
    """Every request counts toward rpc_bytes even when it is dropped, while
    rpc_count stays at zero."""
    with raftkit.Cluster(3, seed=1) as c:
        c.set_network(request_drop=1.0)
        c.run_for(1.0)
        sends = sum(e.kind == "send" for e in c.trace)
        assert sends > 0 and c.rpc_count() == 0
        assert c.rpc_bytes() >= sends * 20, f"{c.rpc_bytes()} bytes for {sends} RequestVote requests"


# ------------------------------------------------------------ cluster: bad input
@pytest.mark.parametrize("call, exc", [
    (lambda c: c.set_network(bogus=1), TypeError),
    (lambda c: c.set_network(request_drop=0.5, bogus=1), TypeError),
    (lambda c: c.set_network(request_drop=0.5, reply_drop=7), ValueError),
    (lambda c: c.set_network(request_drop=1.01), ValueError),
    (lambda c: c.set_network(reply_drop=-0.5), ValueError),
    (lambda c: c.set_network(duplicate=3), ValueError),
    (lambda c: c.set_network(delay=(0.3, 0.1)), ValueError),
    (lambda c: c.partition([0, 1], [1, 2]), ValueError),
    (lambda c: c.partition([0, 3]), ValueError),
    (lambda c: c.partition(0, 1), TypeError),
    (lambda c: c.disconnect(3), ValueError),
    (lambda c: c.connect(-1), ValueError),
    (lambda c: c.crash(7), ValueError),
    (lambda c: c.restart(3), ValueError),
    (lambda c: c.disconnect("1"), TypeError),
    (lambda c: c.connect(1.0), TypeError),
    (lambda c: c.crash(None), TypeError),
    (lambda c: c.is_connected(True), TypeError),
    (lambda c: c.partition(["0"]), TypeError),
    (lambda c: c.set_reliable("no"), TypeError),
    (lambda c: c.set_long_reordering(1), TypeError),
])
def test_cluster_rejects_bad_input(call, exc):
    """Bad arguments raise ValueError/TypeError (API.md: "Bad arguments
    raise ValueError/TypeError with a message that says what was
    expected") and leave the network untouched."""
    with raftkit.Cluster(3, seed=1) as c:
        before = (c.bus.net, c.bus.group, list(c.bus.connected), [c.is_alive(i) for i in range(3)])
        with pytest.raises(exc) as info:
            call(c)
        assert str(info.value), "the error must say what was expected"
        after = (c.bus.net, c.bus.group, list(c.bus.connected), [c.is_alive(i) for i in range(3)])
        assert after == before, f"a rejected call changed the network: {before} -> {after}"
        c.check_one_leader()


def test_cluster_threads_end_with_the_block():
    """Leaving the with-block stops every thread the cluster started."""
    before = set(threading.enumerate())
    with raftkit.Cluster(3, seed=1) as c:
        c.set_network(long_reordering=True, duplicate=0.5)
        c.run_for(1.0)
    leaked = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads still running: {leaked}"


@pytest.mark.parametrize("cls", [LogEntry, ApplyMsg, raftkit.cluster.Action])
def test_written_out_init_agrees_with_the_dataclass(cls):
    """LogEntry's, ApplyMsg's and Action's hand-written __init__ takes exactly the
    dataclass fields, with their defaults; the instances stay frozen,
    comparable, hashable and picklable, and have slots, no dict."""
    import dataclasses
    import inspect
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [inspect.Parameter.empty if f.default is dataclasses.MISSING
                                          else f.default for f in fields]
    values = list(range(len(fields)))
    a, b = cls(*values), cls(**{f.name: v for f, v in zip(fields, values)})
    assert a == b and hash(a) == hash(b) and pickle.loads(pickle.dumps(a)) == a
    assert dataclasses.astuple(a) == tuple(values) and repr(a).startswith(f"{cls.__name__}({fields[0].name}=0")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, fields[0].name, 1)
    assert not hasattr(a, "__dict__")
    assert dataclasses.replace(a, **{fields[0].name: 9}) != a
    with pytest.raises(TypeError):
        cls()


@pytest.mark.parametrize("command", [7, "put x", b"\x00", 2.5, None, True, ["a", "list"], {"op": "put"}])
def test_trace_command_events_read_as_if_written_at_once(command):
    """record_command (the per-command "submit" and "apply" events) gives
    the same events, and so the same digest, as record with the detail
    written out; a mutable command is written down at once, so changing it
    afterwards does not change the trace."""
    clock = [0.0]
    lazy, eager = Trace(lambda: clock[0]), Trace(lambda: clock[0])
    for index, kind in enumerate(["submit", "apply", "apply"], start=1):
        clock[0] += 0.25
        lazy.record_command(kind, index % 3, None if kind == "submit" else index, command)
        detail = (repr(command)[:40] if kind == "submit" else f"index={index} command={repr(command)[:40]}")
        eager.record(kind, index % 3, None, detail)
    before = [str(e) for e in eager.events]
    if isinstance(command, list):
        command.append("changed later")
    elif isinstance(command, dict):
        command["op"] = "changed later"
    assert [str(e) for e in lazy.events] == before
    assert lazy.events == eager.events and lazy.digest() == eager.digest() and len(lazy) == 3
