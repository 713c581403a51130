"""Exercise 7: KV exactly-once: its scenarios."""

from __future__ import annotations

import random

from ... import lincheck
from ...kv import Clerk, ClerkTimeout, HistoryEntry, KVOp, KVService, KVStore
from ...kvcluster import KVCluster
from ..context import ScenarioContext
from .exercise import ClassSpec, KVImpl, exercise, scenario
from .helpers import Failed, expect


def graded_service(store_class):
    class GradedKVService(KVService):
        """The kit's KV server with the student's state machine inside."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.store = store_class()

    GradedKVService.__qualname__ = f"GradedKVService[{store_class.__name__}]"
    return GradedKVService


class _History(list):
    """The history the grader records around the student's clerk (the
    student's code gets a throwaway list as ``self.history``)."""

    last = float("-inf")

    def stamp(self, now):
        self.last = now if now > self.last else self.last + 1e-9
        return self.last


def graded_clerk(clerk_class, kv, history):
    clerk = clerk_class(kv, len(kv.clerks), timeout=kv.clerk_timeout, history=_History())
    kv.clerks.append(clerk)
    request = clerk.request
    clock = kv.clock

    def recorded(kind, key, value):
        started = clock.now()
        entry = HistoryEntry(clerk.client_id, kind, key, value, history.stamp(started))
        history.append(entry)
        try:
            result = request(kind, key, value)  # ClerkTimeout leaves ret=None: "maybe applied"
        except ClerkTimeout:
            if clock.now() < started + kv.clerk_timeout - 1e-6:  # "maybe applied" is earned by retrying
                raise Failed(f"client {clerk.client_id}'s {kind}({key!r}) gave up (ClerkTimeout) after "
                             f"{clock.now() - started:.3f} s, before its timeout of {kv.clerk_timeout} s: a clerk "
                             "keeps retrying until a server answers or its timeout has passed") from None
            raise
        entry.output, entry.ret = result, history.stamp(clock.now())
        return result

    clerk.request = recorded
    return clerk


def kv_cluster(ctx: ScenarioContext, impl: KVImpl, seed: int, n: int = 3, **options) -> KVCluster:
    spec = getattr(impl.store, "raftkit_spec", None)
    if spec is not None:  # the student's classes exist only in node processes (grading/isolated.py)
        from ...isolation.kvprocess import kv_options
        options.update(kv_options(spec, impl.store.raftkit_sandbox, impl.store.raftkit_kit,
                                  impl.store.raftkit_predict))
    else:
        options["service_class"] = graded_service(impl.store)
    kv = KVCluster(n, seed=seed, watchdog=ctx.watchdog, clerk_timeout=5.0, **options)
    kv.graded_history = _History()
    ctx.not_repeatable()  # clerks drive it from outside the nodes: rerun() cannot repeat this run
    return ctx.keep(kv)


def answers_from_the_log(kv, seed, what):
    """Clerks in processes of their own: each answer is what the agreed log gives."""
    from ...isolation.kvprocess import log_disagrees
    why = log_disagrees(kv)
    expect(why is None, f"{what}: {why} (seed={seed})")


def every_operation_answered(kv, seed, although):
    """No operation of the history gave up ("maybe applied"): the network let every one through."""
    gave_up = [e for e in kv.graded_history if e.ret is None]
    if gave_up:
        e = gave_up[0]
        raise Failed(f"client {e.client_id}'s {e.kind}({e.key!r}) got no answer, although {although} (seed={seed})")


def check_history(kv, seed, what):
    answers_from_the_log(kv, seed, what)
    ops = [lincheck.Operation(**vars(e)) for e in kv.graded_history]
    result = lincheck.check(ops, timeout=10.0)
    if result.status == "illegal":
        key, failure = next(iter(result.failure.items()))
        raise Failed(f"{what}: the history of {len(ops)} operations is not linearizable (key {key!r}): "
                     f"{str(failure).strip()} (seed={seed})")
    why = "; ".join(f"key {k!r}: {r}" for k, r in sorted(result.reasons.items(), key=str)) or "no verdict"
    expect(result.status == "ok", f"{what}: the linearizability check could not decide ({why}) (seed={seed})")


def run_clients(kv, impl, seed, clients, ops, keys=2, pause=0.02):
    """Start ``clients`` clerks doing ``ops`` random operations each; run
    the cluster until they finish (or 60 s of cluster time)."""
    done = []

    def body(clerk):
        rng = random.Random(f"{seed}/client{clerk.client_id}")
        for k in range(ops):
            key = f"k{rng.randrange(keys)}"
            kind = rng.choice(("get", "put", "append", "append"))
            try:
                if kind == "get":
                    clerk.request("get", key, None)
                else:
                    clerk.request(kind, key, f"{clerk.client_id}.{k};")
            except ClerkTimeout:
                pass
            kv.clock.sleep(rng.uniform(0.0, pause))
        done.append(clerk.client_id)

    for _ in range(clients):
        clerk = graded_clerk(impl.clerk, kv, kv.graded_history)
        kv.clock.go(body, clerk, owner=clerk, name=f"client {clerk.client_id}")
    return done


def appended_once(kv, seed):
    """Every append value is unique in these scenarios: none may appear twice."""
    for i in range(kv.n):
        if not kv.is_alive(i):
            continue
        for key, value in kv.data(i).items():
            parts = [p for p in value.split(";") if p]
            twice = sorted({p for p in parts if parts.count(p) > 1})
            if twice:
                raise Failed(f"node {i}: key {key!r} = {value!r} holds {twice[0]!r} twice: an append was "
                             f"applied twice (a retry, or a duplicated request; seed={seed})")


def ex7_dedup(ctx, impl, seed):
    """White-box: the state machine applies each (client_id, seq) once: a
    duplicate returns the first result and changes nothing, an older
    sequence number changes nothing; every client has its own numbers."""
    store = impl.store()
    a1 = KVOp(1, 1, "append", "x", "a;")
    expect(store.apply(a1) == "a;", "append x 'a;' to an empty store should return 'a;'")
    expect(store.apply(a1) == "a;", "a duplicate of client 1's op 1 must return its first result 'a;'")
    expect(store.apply(KVOp(1, 2, "get", "x")) == "a;", f"x should be 'a;' (the duplicate must not be applied), "
                                                        f"store.data = {store.data!r}")
    expect(store.apply(KVOp(2, 1, "append", "x", "b;")) == "a;b;", "client 2's first op is new: 'a;b;'")
    store.apply(KVOp(1, 1, "append", "x", "a;"))
    store.apply(KVOp(1, 3, "put", "y", "1"))
    store.apply(KVOp(1, 3, "put", "y", "2"))
    expect(store.data.get("x") == "a;b;" and store.data.get("y") == "1",
           f"old and duplicate operations must not be applied again: data {store.data!r}, expected "
           "{'x': 'a;b;', 'y': '1'}")
    copy = impl.store()
    copy.load(store.dump())
    expect(copy.data == store.data, "load(dump()) must give back the same data")
    copy.apply(KVOp(2, 1, "append", "x", "b;"))
    expect(copy.data.get("x") == "a;b;",
           "after load(dump()) a duplicate was applied again: the dedup table must be part of the snapshot")


def ex7_basic(ctx, impl, seed):
    """Put, append and get through the log with the student's clerk."""
    kv = kv_cluster(ctx, impl, seed)
    clerk = graded_clerk(impl.clerk, kv, kv.graded_history)
    out = {}

    def body(clerk):
        out["put"] = clerk.request("put", "a", "x")
        out["append"] = clerk.request("append", "a", "y")
        out["get"] = clerk.request("get", "a", None)
        out["missing"] = clerk.request("get", "nope", None)

    kv.clock.go(body, clerk, owner=clerk, name="client 0")
    expect(kv.run_until(lambda kv: len(out) == 4, 30), f"the clerk did not finish 4 operations in 30 s: {out} "
                                                       f"(seed={seed})")
    expect(out == {"put": None, "append": "xy", "get": "xy", "missing": ""},
           f"put a=x, append a+=y, get a, get nope should answer 'xy', 'xy', '', got {out} (seed={seed})")
    answers_from_the_log(kv, seed, "basic operations")


def ex7_lost_replies(ctx, impl, seed):
    """30 % of replies are lost: the clerk must retry until it gets an
    answer, with the same sequence number, so that a retried append is
    applied once. Every operation completes and the history is linearizable."""
    kv = kv_cluster(ctx, impl, seed)
    kv.check_one_leader()
    kv.set_network(reply_drop=0.3)
    done = run_clients(kv, impl, seed, clients=2, ops=15)
    kv.run_until(lambda kv: len(done) == 2, 60)
    appended_once(kv, seed)
    expect(len(done) == 2, f"clients did not finish their operations in 60 s (seed={seed})")
    every_operation_answered(kv, seed, "the servers were up and only replies were lost: a clerk must keep "
                                       "retrying until a server answers")
    check_history(kv, seed, "lost replies")


def ex7_duplicates(ctx, impl, seed):
    """The network delivers 30 % of requests twice: the state machine must
    apply each operation once."""
    kv = kv_cluster(ctx, impl, seed)
    kv.check_one_leader()
    kv.set_network(duplicate=0.3)
    done = run_clients(kv, impl, seed, clients=3, ops=10)
    kv.run_until(lambda kv: len(done) == 3, 60)
    appended_once(kv, seed)
    expect(len(done) == 3, f"clients did not finish their operations in 60 s (seed={seed})")
    every_operation_answered(kv, seed, "every server was up and no message was lost")
    check_history(kv, seed, "duplicated requests")


def ex7_leader_changes(ctx, impl, seed):
    """Clients keep going while leaders are disconnected and come back:
    the clerk must find the new leader and never apply an operation twice."""
    rng = random.Random(seed)
    kv = kv_cluster(ctx, impl, seed, n=5)
    done = run_clients(kv, impl, seed, clients=3, ops=12, pause=0.05)
    for _ in range(6):
        kv.run_for(rng.uniform(0.3, 0.8))
        leader = kv.leader()
        if leader is not None:
            kv.disconnect(leader)
        kv.run_for(rng.uniform(0.3, 0.8))
        kv.heal()
    kv.run_until(lambda kv: len(done) == 3, 60)
    appended_once(kv, seed)
    expect(len(done) == 3, f"clients did not finish their operations (seed={seed})")
    check_history(kv, seed, "leader changes")


def ex7_snapshots(ctx, impl, seed):
    """Snapshots every 5 entries, nodes crash and restart, replies are
    lost: the dedup table must travel in the snapshot, or a restarted node
    applies a retried operation again."""
    rng = random.Random(seed)
    kv = kv_cluster(ctx, impl, seed, n=3, snapshot_interval=5)
    kv.set_network(reply_drop=0.2)
    done = run_clients(kv, impl, seed, clients=2, ops=15, pause=0.05)
    for _ in range(5):
        kv.run_for(rng.uniform(0.3, 0.8))
        victim = rng.randrange(3)
        kv.crash(victim)
        kv.run_for(rng.uniform(0.2, 0.5))
        kv.restart(victim)
    kv.set_network(reply_drop=0.0)
    kv.run_until(lambda kv: len(done) == 2, 60)
    kv.run_for(1.0)
    appended_once(kv, seed)
    expect(len(done) == 2, f"clients did not finish their operations (seed={seed})")
    check_history(kv, seed, "crashes and snapshots")


def ex7_four_servers(ctx, impl, seed):
    """4 servers whose leader is not server 0 or 2: a clerk that tries the
    servers in turn must reach every one of them."""
    kv = kv_cluster(ctx, impl, seed, n=4)
    leader = kv.check_one_leader()
    for _ in range(10):
        if leader % 2 == 1:
            break
        kv.disconnect(leader)
        kv.run_for(1.0)
        kv.connect(leader)
        leader = kv.check_one_leader()
    expect(leader % 2 == 1, f"could not make an odd server lead (seed={seed})")
    clerk = graded_clerk(impl.clerk, kv, kv.graded_history)
    out = {}

    def body(clerk):
        out["put"] = clerk.request("put", "a", "1")
        out["get"] = clerk.request("get", "a", None)

    kv.clock.go(body, clerk, owner=clerk, name="client 0")
    expect(kv.run_until(lambda kv: len(out) == 2, 30),
           f"server {leader} of 4 leads, and the clerk did not finish put and get in 30 s: it must try every "
           f"server in turn (seed={seed})")
    expect(out == {"put": None, "get": "1"}, f"put a=1 then get a should answer '1', got {out} (seed={seed})")
    answers_from_the_log(kv, seed, "finding the leader among 4")


# The grade sheet: what is graded, worth how much, with which seeds (the order is the report's).
SCENARIOS = [
    scenario(7, "dedup table", 15, ex7_dedup, public=True, seeds=(1,)),
    scenario(7, "basic operations", 10, ex7_basic, public=True, seeds=(1,)),
    scenario(7, "lost replies: retry with the same seq", 20, ex7_lost_replies, public=True, seeds=(1, 2)),
    scenario(7, "duplicated requests", 15, ex7_duplicates, seeds=(1, 2)),
    scenario(7, "leader changes", 15, ex7_leader_changes, seeds=(1, 2)),
    scenario(7, "crashes and snapshots", 15, ex7_snapshots, seeds=(1, 2)),
    scenario(7, "finding the leader among 4", 10, ex7_four_servers, seeds=(1, 2)),
]

exercise(7, "A KV service with exactly-once clerks", "07-kv-exactly-once",
         ClassSpec("MyKVStore", KVStore, ("apply", "dump", "load")),
         ClassSpec("MyClerk", Clerk, ("request",)),
         scenarios=SCENARIOS)
