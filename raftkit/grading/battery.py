"""The graded scenarios of exercises 1-7.

Theory of operation
-------------------
Each exercise is a set of *scenarios*. A scenario is a function
``(ctx, impl, seed) -> None`` that raises on failure: ``ctx`` is the
:class:`~raftkit.grading.context.ScenarioContext` of this run (its
clusters, their watchdog), ``impl`` is the student's node class
(exercises 1-6) or a :class:`KVImpl` (exercise 7), ``seed`` seeds the
cluster and the scenario's own random choices, so one (scenario, seed)
pair is one exact, replayable run. Scenarios are of two kinds:

* **black-box**: an MIT 6.5840 tester scenario (same steps, same numbers)
  driven through the ``Cluster`` API, under the safety monitor, which checks
  Raft's invariants after every event (always on);
* **white-box**: the cluster is frozen, a handler of one node is called
  directly with hand-made arguments, and the node's answer and state are
  compared with Figure 2's rule. These name the rule that broke, and they
  are deterministic, so a classic bug is caught on every seed.

A scenario is worth its points only if it passes on every seed it is run
with: its fixed ``seeds`` plus the fresh random seeds the grader picks at
grading time (the same for the whole class). ``public`` scenarios (fixed
seeds only) are the ones the notebook's ``check()`` cell runs.

Clusters are made through :func:`cluster` / :func:`kv_cluster`, which record
them in the run's context so the runner can stop them and ``replay`` can
hand the failing one back to the student.
"""

from __future__ import annotations

import random
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import lincheck
from ..cluster import Cluster
from ..config import Config
from ..kv import Clerk, ClerkTimeout, HistoryEntry, KVOp, KVService, KVStore
from ..kvcluster import KVCluster
from ..messages import AppendEntriesArgs, AppendEntriesReply, CMState, InstallSnapshotArgs, LogEntry, RequestVoteArgs
from ..raft import ConsensusModule
from .context import ScenarioContext

__all__ = ["Scenario", "Exercise", "ClassSpec", "KVImpl", "EXERCISES", "ScenarioContext", "cluster", "kv_cluster",
           "exercise", "scenario", "Failed"]

FOLLOWER, CANDIDATE, LEADER = CMState.FOLLOWER, CMState.CANDIDATE, CMState.LEADER
ET = 1.0                 # MIT's RaftElectionTimeout: the unit of the tester's sleeps


class Failed(AssertionError):
    """A scenario's own check failed (the message says what was expected)."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


# --------------------------------------------------------------------------
# What an exercise is
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassSpec:
    """A class the student writes: its name in the notebook, the raftkit
    class it must extend, and the methods it must define itself."""

    name: str
    base: type
    methods: tuple


@dataclass(frozen=True)
class Scenario:
    exercise: int
    name: str
    points: int
    run: Callable[[ScenarioContext, Any, int], None]
    doc: str
    public: bool = False
    seeds: tuple = (1, 2, 3)

    def __call__(self, ctx: ScenarioContext, impl, seed: int) -> None:
        self.run(ctx, impl, seed)


@dataclass
class Exercise:
    number: int
    title: str
    notebook: str                       # file name stem in solutions/ and exercises/
    classes: tuple
    scenarios: list = field(default_factory=list)

    @property
    def max_points(self) -> int:
        return sum(s.points for s in self.scenarios)

    def scenario(self, name: str) -> Scenario:
        for s in self.scenarios:
            if s.name == name:
                return s
        matches = [s for s in self.scenarios if name.lower() in s.name.lower()]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(repr(s.name) for s in self.scenarios)
        raise ValueError(f"exercise {self.number} has no scenario {name!r}; its scenarios are {names}")

    def make_impl(self, *classes):
        """The object scenarios receive: the node class, or a KVImpl."""
        if len(self.classes) == 1:
            return classes[0]
        return KVImpl(*classes)


class KVImpl(NamedTuple):
    """Exercise 7: the student's state machine and clerk classes."""
    store: type
    clerk: type


EXERCISES: dict[int, Exercise] = {}


def exercise(number, title, notebook, *classes):
    EXERCISES[number] = Exercise(number, title, notebook, tuple(classes))


def scenario(number: int, name: str, points: int, *, public: bool = False, seeds=(1, 2, 3)):
    """Register the decorated function as a scenario of exercise ``number``."""
    def register(fn):
        doc = " ".join((fn.__doc__ or "").split())
        EXERCISES[number].scenarios.append(Scenario(number, name, points, fn, doc, public, tuple(seeds)))
        return fn
    return register


# --------------------------------------------------------------------------
# Helpers shared by the scenarios
# --------------------------------------------------------------------------

def cluster(ctx: ScenarioContext, n: int, seed: int, node_class, **options) -> Cluster:
    """A cluster for a scenario (recorded in ``ctx`` for the runner and for replay)."""
    return ctx.keep(Cluster(n, seed=seed, node_class=node_class, watchdog=ctx.watchdog, **options))


def frozen(ctx, node_class, seed: int, n: int = 3, **options) -> Cluster:
    """A white-box bench: every node disconnected (no RPC interferes), 20 ms
    of cluster time passed (so a timer reset is visible), nobody timed out yet."""
    c = cluster(ctx, n, seed, node_class, **options)
    ctx.not_repeatable()  # handlers get called by hand: rerun() cannot repeat this run
    for i in range(n):
        c.disconnect(i)
    c.run_for(0.020)
    return c


def set_log(node, terms, term=None, commands=None):
    """Give a frozen node a log with entries of these terms (commands "1", "2", ...)."""
    commands = commands or [f"e{i + 1}" for i in range(len(terms))]
    node.log = [LogEntry(t, cmd) for t, cmd in zip(terms, commands)]
    node.current_term = max(terms) if term is None else term
    node.voted_for = None


def locked(node, method, *args):
    """Call a "mu held" method as its callers do: holding the lock."""
    with node.mu:
        return method(*args)


def show_log(node) -> str:
    return "[" + ", ".join(f"{e.term}:{e.command}" for e in node.log) + "]"


def rand_int(rng: random.Random) -> int:
    return rng.getrandbits(63)


def figure8_sleep(rng: random.Random) -> float:
    if rng.randrange(1000) < 100:
        return rng.randrange(int(ET * 1000) // 2) / 1000
    return rng.randrange(13) / 1000


# --------------------------------------------------------------------------
# MIT 6.5840 scenarios, written once and shared by the exercises
# (the tester's steps and numbers; tests/test_mit_scenarios.py runs them on
# the reference ConsensusModule, with the tester's other scenarios)
# --------------------------------------------------------------------------

def mit_initial_election(ctx, node_class, seed):
    """A leader within ~5 s; all agree on a term >= 1; with no failures the
    term stays the same for 2 s and there is still a leader."""
    c = cluster(ctx, 3, seed, node_class)
    c.check_one_leader()
    c.run_for(0.050)
    term1 = c.check_terms()
    expect(term1 >= 1, f"term is {term1}, but should be at least 1 (seed={seed})")
    c.run_for(2 * ET)
    term2 = c.check_terms()
    expect(term1 == term2, f"the term changed from {term1} to {term2} although nothing failed "
                           f"(an election while a leader was alive; seed={seed})")
    c.check_one_leader()


def mit_re_election(ctx, node_class, seed):
    """Disconnect the leader: a new one. Reconnect it: still one leader.
    Leave one node alone: it must not lead. A quorum again: a leader."""
    c = cluster(ctx, 3, seed, node_class)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    c.check_one_leader()
    c.connect(leader1)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    c.disconnect((leader2 + 1) % 3)
    c.run_for(2 * ET)
    c.check_no_leader()
    c.connect((leader2 + 1) % 3)
    c.check_one_leader()
    c.connect(leader2)
    c.check_one_leader()


def mit_many_elections(ctx, node_class, seed):
    """7 nodes; 9 times: disconnect 3 random nodes, expect one leader among
    the rest, reconnect them."""
    rng = random.Random(seed)
    c = cluster(ctx, 7, seed, node_class)
    c.check_one_leader()
    for _ in range(9):
        i1, i2, i3 = rng.randrange(7), rng.randrange(7), rng.randrange(7)
        c.disconnect(i1)
        c.disconnect(i2)
        c.disconnect(i3)
        c.check_one_leader()
        c.connect(i1)
        c.connect(i2)
        c.connect(i3)
    c.check_one_leader()


def mit_basic_agree(ctx, node_class, seed):
    """Commands 100, 200, 300 land at indexes 1, 2, 3 on all 3 nodes."""
    c = cluster(ctx, 3, seed, node_class)
    for index in range(1, 4):
        expect(c.n_committed(index)[0] == 0, f"some have committed before Start() (seed={seed})")
        got = c.one(index * 100, 3, False)
        expect(got == index, f"got index {got} but expected {index} (seed={seed})")


def mit_fail_agree(ctx, node_class, seed):
    """A follower misses 4 entries while disconnected, comes back: its log
    is repaired and new commands commit on all 3."""
    c = cluster(ctx, 3, seed, node_class)
    c.one(101, 3, False)
    leader = c.check_one_leader()
    c.disconnect((leader + 1) % 3)
    c.one(102, 2, False)
    c.one(103, 2, False)
    c.run_for(ET)
    c.one(104, 2, False)
    c.one(105, 2, False)
    c.connect((leader + 1) % 3)
    c.one(106, 3, True)
    c.run_for(ET)
    c.one(107, 3, True)


def mit_fail_no_agree(ctx, node_class, seed):
    """5 nodes, 3 followers cut off: the leader accepts 20 at index 2 but
    nothing commits; after reconnection everything agrees again."""
    n = 5
    c = cluster(ctx, n, seed, node_class)
    c.one(10, n, False)
    leader = c.check_one_leader()
    for k in (1, 2, 3):
        c.disconnect((leader + k) % n)
    index, _, ok = c.submit(20, node=leader)
    expect(ok and index == 2, f"the leader should accept 20 at index 2, got index={index} ok={ok} (seed={seed})")
    c.run_for(2 * ET)
    count, _ = c.n_committed(index)
    expect(count == 0, f"{count} nodes committed index 2 without a majority (seed={seed})")
    for k in (1, 2, 3):
        c.connect((leader + k) % n)
    leader2 = c.check_one_leader()
    index2, _, ok2 = c.submit(30, node=leader2)
    expect(ok2 and 2 <= index2 <= 3, f"unexpected index {index2} (seed={seed})")
    c.one(1000, n, True)


def mit_rejoin(ctx, node_class, seed):
    """A partitioned leader piles up 3 entries; the others commit; then the
    old leader (longer log, older last term) and a follower (newer term)
    must elect the follower, and the old leader's entries are overwritten."""
    c = cluster(ctx, 3, seed, node_class)
    c.one(101, 3, True)
    leader1 = c.check_one_leader()
    c.disconnect(leader1)
    for cmd in (102, 103, 104):
        c.submit(cmd, node=leader1)
    c.one(103, 2, True)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    c.connect(leader1)
    c.one(104, 2, True)
    c.connect(leader2)
    c.one(105, 3, True)


def mit_backup(ctx, node_class, seed):
    """5 nodes; two minorities pile up 50 stale entries each; the majority
    with the later committed entries must overwrite them quickly."""
    rng = random.Random(seed)
    n = 5
    c = cluster(ctx, n, seed, node_class)
    c.one(rand_int(rng), n, True)
    leader1 = c.check_one_leader()
    for k in (2, 3, 4):
        c.disconnect((leader1 + k) % n)
    for _ in range(50):
        c.submit(rand_int(rng), node=leader1)
    c.run_for(ET / 2)
    c.disconnect(leader1)
    c.disconnect((leader1 + 1) % n)
    for k in (2, 3, 4):
        c.connect((leader1 + k) % n)
    for _ in range(50):
        c.one(rand_int(rng), 3, True)
    leader2 = c.check_one_leader()
    other = (leader1 + 2) % n
    if leader2 == other:
        other = (leader2 + 1) % n
    c.disconnect(other)
    for _ in range(50):
        c.submit(rand_int(rng), node=leader2)
    c.run_for(ET / 2)
    for i in range(n):
        c.disconnect(i)
    c.connect(leader1)
    c.connect((leader1 + 1) % n)
    c.connect(other)
    for _ in range(50):
        c.one(rand_int(rng), 3, True)
    for i in range(n):
        c.connect(i)
    c.one(rand_int(rng), n, True)


def mit_unreliable_agree(ctx, node_class, seed, rounds=49):
    """5 nodes on an unreliable network (drops, delays, reordering): many
    commands in flight at once; all must commit, then one on all 5."""
    rng = random.Random(seed)
    n = 5
    c = cluster(ctx, n, seed, node_class)
    c.set_reliable(False)
    c.set_network(delay=(0.0, 0.040))  # wide delays: requests overtake each other
    c.one(0, 1, True)
    expected = {}
    for r in range(1, rounds + 1):
        for j in range(5):
            cmd = 100 * r + j
            leader = c.leader()
            if leader is not None:
                index, _, ok = c.submit(cmd, node=leader)
                if ok:
                    expected[cmd] = index
            c.run_for(rng.uniform(0.0, 0.020))
        c.run_for(0.1)
    c.set_reliable(True)
    c.set_network(delay=(0.0, 0.0))
    c.one(1, n, True)
    c.run_for(0.5)
    for index in range(1, c.nodes[c.check_one_leader()].commit_index + 1):
        c.n_committed(index)  # raises if two nodes applied different commands


def mit_persist1(ctx, node_class, seed):
    """Crash and restart everyone, then leaders and followers one at a
    time; restarted nodes keep their logs and catch up."""
    c = cluster(ctx, 3, seed, node_class)
    c.one(11, 3, True)
    for i in range(3):
        c.restart(i)
    c.one(12, 3, True)
    leader1 = c.check_one_leader()
    c.restart(leader1)
    c.one(13, 3, True)
    leader2 = c.check_one_leader()
    c.disconnect(leader2)
    c.one(14, 2, True)
    c.restart(leader2)
    c.connect(leader2)
    c.wait(4, 3, -1)
    i3 = (c.check_one_leader() + 1) % 3
    c.disconnect(i3)
    c.one(15, 2, True)
    c.restart(i3)
    c.connect(i3)
    c.one(16, 3, True)


def mit_persist2(ctx, node_class, seed, rounds=5):
    """5 nodes: commit on 3, isolate everyone, restart the two that missed
    the entry, then one that has it: that group must elect it and commit."""
    n = 5
    c = cluster(ctx, n, seed, node_class)
    index = 1
    for _ in range(rounds):
        c.one(10 + index, n, True)
        index += 1
        leader1 = c.check_one_leader()
        c.disconnect((leader1 + 1) % n)
        c.disconnect((leader1 + 2) % n)
        c.one(10 + index, n - 2, True)
        index += 1
        for k in (0, 3, 4):
            c.disconnect((leader1 + k) % n)
        for k in (1, 2):
            c.restart((leader1 + k) % n)
            c.connect((leader1 + k) % n)
        c.run_for(ET)
        c.restart((leader1 + 3) % n)
        c.connect((leader1 + 3) % n)
        c.one(10 + index, n - 2, True)
        index += 1
        c.connect((leader1 + 4) % n)
        c.connect(leader1)
    c.one(1000, n, True)


def mit_persist3(ctx, node_class, seed):
    """Leader L and L+1 commit 102 without L+2; both crash; L restarts next
    to L+2: L must win (it has 102) and commit 103; then 104 on all."""
    c = cluster(ctx, 3, seed, node_class)
    c.one(101, 3, True)
    leader = c.check_one_leader()
    c.disconnect((leader + 2) % 3)
    c.one(102, 2, True)
    c.crash(leader)
    c.crash((leader + 1) % 3)
    c.connect((leader + 2) % 3)
    c.restart(leader)
    c.one(103, 2, True)
    c.restart((leader + 1) % 3)
    c.one(104, 3, True)


def mit_figure8(ctx, node_class, seed, iterations=1000):
    """5 nodes: submit on every live node, crash the leader that accepted,
    restart someone when fewer than 3 are up; at the end all agree."""
    rng = random.Random(seed)
    n = 5
    c = cluster(ctx, n, seed, node_class)
    c.one(rand_int(rng), 1, True)
    up = n
    for _ in range(iterations):
        leader = -1
        for i in range(n):
            if c.is_alive(i) and c.submit(rand_int(rng), node=i)[2]:
                leader = i
        c.run_for(figure8_sleep(rng))
        if leader != -1:
            c.crash(leader)
            up -= 1
        if up < 3:
            s = rng.randrange(n)
            if not c.is_alive(s):
                c.restart(s)
                up += 1
    for i in range(n):
        if not c.is_alive(i):
            c.restart(i)
    c.one(rand_int(rng), n, True)


# ==========================================================================
# Exercise 1: fix the seed (the election timer)
# ==========================================================================

exercise(1, "Fix the seed: the election timer", "01-fix-the-seed",
         ClassSpec("MyNode", ConsensusModule, ("run_election_timer", "start_election")))


@scenario(1, "initial election", 15, public=True, seeds=(1, 2, 3))
def ex1_initial_election(ctx, node_class, seed):
    """MIT InitialElection: a leader within 5 s, terms agree, no needless elections."""
    mit_initial_election(ctx, node_class, seed)


@scenario(1, "re-election", 20, public=True, seeds=(1, 2, 3))
def ex1_re_election(ctx, node_class, seed):
    """MIT ReElection: elections after the leader disconnects, none without a quorum."""
    mit_re_election(ctx, node_class, seed)


@scenario(1, "split vote is retried", 10, public=True, seeds=(1, 2, 3))
def ex1_split_vote(ctx, node_class, seed):
    """Every node alone for a second: each times out, votes for itself and
    loses (a split vote). After healing, a candidate must try again: a
    candidate whose election fails starts a new one when its timer fires."""
    c = cluster(ctx, 3, seed, node_class)
    c.partition([0], [1], [2])
    c.run_for(1.0)
    terms = [c.get_state(i)[0] for i in range(3)]
    expect(min(terms) >= 1, f"after 1 s alone, every node should have become a candidate; terms {terms} (seed={seed})")
    c.heal()
    c.check_one_leader()


@scenario(1, "a leader stays leader", 20, seeds=(1, 2, 3))
def ex1_stable_leader(ctx, node_class, seed):
    """With heartbeats every 50 ms and timeouts of 150-300 ms, nobody may
    start an election while the leader is alive: the term and the leader
    stay the same for 3 s."""
    c = cluster(ctx, 5, seed, node_class)
    leader = c.check_one_leader()
    term = c.get_state(leader)[0]
    c.run_for(3.0)
    terms = [c.get_state(i)[0] for i in range(5)]
    expect(terms == [term] * 5 and c.get_state(leader)[1],
           f"leader {leader} of term {term} was alive, yet terms became {terms} "
           f"(an election timer fired although heartbeats kept arriving; seed={seed})")


@scenario(1, "many elections", 10, seeds=(1, 2, 3))
def ex1_many_elections(ctx, node_class, seed):
    """MIT ManyElections: 7 nodes, random disconnections, always one leader."""
    mit_many_elections(ctx, node_class, seed)


@scenario(1, "becoming a candidate", 10, public=True, seeds=(1,))
def ex1_becoming_candidate(ctx, node_class, seed):
    """White-box, Figure 2 (candidates): start_election increments the term
    by one, votes for itself, resets the election timer and persists that
    before asking; it wins only with a majority: 5 nodes, its own vote and
    one granted reply (2 of 5) are not enough."""
    c = frozen(ctx, node_class, seed, n=5)
    node = c.nodes[0]
    set_log(node, [], term=3)
    c.connect(0)
    c.connect(1)
    locked(node, node.start_election)
    expect(node.state == CANDIDATE and node.current_term == 4,
           f"a follower of term 3 that starts an election must become candidate of term 4 (increment "
           f"currentTerm by one); it is {node.state} of term {node.current_term}")
    expect(node.voted_for == 0, f"a candidate votes for itself: voted_for should be 0, it is {node.voted_for}")
    expect(node.election_reset_event == c.now,
           f"starting an election resets the election timer (election_reset_event = now = {c.now:.3f}), "
           f"it is {node.election_reset_event:.3f}")
    c.run_for(0.015)
    expect(c.nodes[1].voted_for == 0, f"node 1 (connected, term 0) should have voted for candidate 0, "
                                      f"it voted for {c.nodes[1].voted_for}")
    expect(node.state == CANDIDATE,
           f"5 nodes: the candidate's own vote and node 1's make 2 of 5, not a majority, yet it is {node.state} "
           f"(start with votes = [1], our own vote)")
    c.restart(0)
    node = c.nodes[0]
    expect((node.current_term, node.voted_for) == (4, 0),
           f"after a crash the candidate came back with term {node.current_term} and voted_for "
           f"{node.voted_for}, not 4 and 0: persist() before asking for votes")


def election_timers(c, i) -> int:
    """How many election timers of node ``i`` are running."""
    return sum(1 for t in c.clock.live_tasks()
               if t.owner is c.nodes[i] and t.name.endswith(": run_election_timer"))


@scenario(1, "one election timer per node", 10, seeds=(1, 2, 3))
def ex1_one_timer(ctx, node_class, seed):
    """An election timer must return once the term moves on, whoever moved
    it: each election, and each newer term learnt from a message, starts a
    new timer, and old ones that keep running pile up (a goroutine leak).
    Every node alone for 2 s (a dozen elections each), then 4 leader
    changes: at most 2 timers per node may run at once (the new one, and an
    old one on its last tick)."""
    c = cluster(ctx, 3, seed, node_class)

    def at_most_two(when):
        counts = [election_timers(c, i) for i in range(3)]
        worst = counts.index(max(counts))
        expect(max(counts) <= 2,
               f"{when} (t={c.now:.1f} s, term {c.get_state(worst)[0]}), node {worst} runs {max(counts)} election "
               f"timers: a timer must return when the term changes (seed={seed})")

    c.partition([0], [1], [2])
    for _ in range(20):
        c.run_for(0.1)
        at_most_two("alone")
    c.heal()
    for _ in range(4):
        leader = c.check_one_leader()
        c.disconnect(leader)
        c.check_one_leader()
        c.connect(leader)
        c.run_for(0.5)
        at_most_two("after a leader change")


@scenario(1, "RPC counts", 5, seeds=(1, 2, 3))
def ex1_rpc_counts(ctx, node_class, seed):
    """MIT TestCount (its election and idle parts): at most 30 RPCs to elect
    the first leader of 3, at most 3 * 20 = 60 in a second with nothing to
    do. Elections that restart far too often (a timer that fires on every
    tick, or is never reset) still elect a leader in the end: this counts them."""
    c = cluster(ctx, 3, seed, node_class)
    c.check_one_leader()
    total1 = c.rpc_count()
    expect(1 <= total1 <= 30, f"too many or few RPCs ({total1}) to elect the first leader (seed={seed})")
    c.run_for(0.5)
    total2 = c.rpc_count()
    c.run_for(ET)
    total3 = c.rpc_count()
    expect(total3 - total2 <= 3 * 20, f"too many RPCs ({total3 - total2}) for 1 second of idleness (seed={seed})")


# ==========================================================================
# Exercise 2: RequestVote
# ==========================================================================

exercise(2, "RequestVote: the handler and the vote counting", "02-request-vote",
         ClassSpec("MyNode", ConsensusModule, ("request_vote", "send_request_vote")))


@scenario(2, "term rules", 10, public=True, seeds=(1,))
def ex2_term_rules(ctx, node_class, seed):
    """White-box, Figure 2: a request from an older term gets no vote and
    the reply carries our term; a request from a newer term makes us adopt
    it and step down to follower (and then we may vote)."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [], term=3)
    reply = node.request_vote(RequestVoteArgs(2, 1, 0, 0))
    expect(not reply.vote_granted, "granted a vote to a candidate of term 2 while in term 3 "
                                   "(Figure 2: reply false if term < currentTerm)")
    expect(reply.term == 3, f"the reply to a stale candidate must carry our term 3, got {reply.term}")
    with node.mu:
        node.state = CANDIDATE
        node.voted_for = 0
    reply = node.request_vote(RequestVoteArgs(5, 2, 0, 0))
    expect(node.current_term == 5, f"a request of term 5 must make a node of term 3 adopt term 5, "
                                   f"its term is {node.current_term}")
    expect(node.state == FOLLOWER, f"a candidate that sees a newer term must become follower, it is {node.state}")
    expect(reply.vote_granted and node.voted_for == 2,
           f"a newer term frees the vote: node 2 of term 5 should get it (granted={reply.vote_granted}, "
           f"voted_for={node.voted_for})")
    expect(reply.term == 5, f"the reply must carry the new term 5, got {reply.term}")


@scenario(2, "one vote per term", 15, public=True, seeds=(1,))
def ex2_one_vote(ctx, node_class, seed):
    """White-box: a node grants at most one vote per term (Figure 2:
    votedFor is null or candidateId). Asking again for the same candidate
    (a duplicated request) gets the vote again; another candidate does not."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    reply = node.request_vote(RequestVoteArgs(1, 1, 0, 0))
    expect(reply.vote_granted, "node 0 (term 0, never voted) refused its vote to candidate 1 of term 1")
    expect(node.voted_for == 1, f"after voting for 1, voted_for should be 1, it is {node.voted_for}")
    reply = node.request_vote(RequestVoteArgs(1, 2, 0, 0))
    expect(not reply.vote_granted, "node 0 voted twice in term 1: for candidate 1, then for candidate 2")
    expect(node.voted_for == 1, f"voted_for changed from 1 to {node.voted_for} within term 1")
    reply = node.request_vote(RequestVoteArgs(1, 1, 0, 0))
    expect(reply.vote_granted, "a duplicate request from candidate 1 (already voted for it in this term) "
                               "must be granted again (Figure 2: votedFor is null or candidateId)")


@scenario(2, "election timer reset on a granted vote", 10, public=True, seeds=(1,))
def ex2_timer_reset(ctx, node_class, seed):
    """White-box: granting a vote resets the election timer
    (election_reset_event = now), refusing one does not, so a node that
    just voted does not start a competing election right away."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [], term=1)  # already in term 1: only the vote itself can reset the timer
    before = node.election_reset_event
    reply = node.request_vote(RequestVoteArgs(1, 1, 0, 0))
    expect(reply.vote_granted, "node 0 (term 1, no vote yet) refused its vote to candidate 1 of term 1")
    expect(node.election_reset_event == c.now,
           f"granting a vote at t={c.now:.3f} must reset the election timer "
           f"(election_reset_event = self.clock.now()), it is still {before:.3f}")
    c.run_for(0.020)
    granted_at = node.election_reset_event
    reply = node.request_vote(RequestVoteArgs(1, 2, 0, 0))
    if not reply.vote_granted:  # (a second vote in the term is the "one vote per term" scenario's business)
        expect(node.election_reset_event == granted_at,
               f"refusing a vote must not reset the election timer (it moved from {granted_at:.3f} "
               f"to {node.election_reset_event:.3f})")


@scenario(2, "vote counting", 15, public=True, seeds=(1,))
def ex2_vote_counting(ctx, node_class, seed):
    """White-box: a candidate counts a reply as a vote only if the vote was
    granted for the election it is running now (a request of its current
    term); a majority makes it leader; a reply with a newer term makes it
    step down. (`votes` is the one-element list [count] that
    start_election shares between its reply threads.)"""
    c = frozen(ctx, node_class, seed)
    cand, voter = c.nodes[0], c.nodes[1]
    voter.request_vote = types.MethodType(ConsensusModule.request_vote, voter)  # the voter is raftkit's own
    c.connect(0)
    c.connect(1)

    def ask(term, votes):
        cand.go(cand.send_request_vote, 1, RequestVoteArgs(term, 0, 0, 0), votes)
        c.run_for(0.015)

    with cand.mu:
        cand.current_term, cand.state, cand.voted_for = 5, CANDIDATE, 0
    set_log(voter, [], term=4)
    votes = [1]
    ask(4, votes)
    expect(cand.state == CANDIDATE and votes == [1],
           f"candidate 0 of term 5 got a vote that node 1 granted to its request of term 4 (an older election); "
           f"it must not count (reply to a request whose term is not the current term): votes={votes}, "
           f"state={cand.state}")
    set_log(voter, [], term=5)
    voter.voted_for = 2
    ask(5, votes)
    expect(cand.state == CANDIDATE and votes == [1],
           f"node 1 refused its vote (it voted for 2 in term 5), yet candidate 0 counted it: votes={votes}, "
           f"state={cand.state}")
    set_log(voter, [], term=7)
    ask(5, votes)
    expect(cand.state == FOLLOWER and cand.current_term == 7,
           f"a reply carrying term 7 must make candidate 0 (term 5) adopt term 7 and become follower; it is "
           f"{cand.state} in term {cand.current_term}")
    with cand.mu:
        cand.current_term, cand.state, cand.voted_for = 8, CANDIDATE, 0
    set_log(voter, [], term=8)
    votes = [1]
    ask(8, votes)
    expect(cand.state == LEADER,
           f"candidate 0 of term 8 got node 1's vote: with its own that is 2 of 3, a majority, so it must "
           f"become leader (start_leader()); it is {cand.state}, votes={votes}")


@scenario(2, "up-to-date check (5.4.1)", 15, public=True, seeds=(1,))
def ex2_up_to_date(ctx, node_class, seed):
    """White-box, the election restriction: vote only for a candidate whose
    log is at least as up-to-date: compare the last terms first, and the
    lengths only if the last terms are equal (not the lengths alone)."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1, 3, 3], term=3)  # last term 3, last index 3
    cases = [  # (term, candidate, last_log_index, last_log_term, granted, why)
        (4, 1, 10, 2, False, "its last term 2 is older than ours (3), even though its log is longer"),
        (4, 1, 2, 3, False, "same last term 3 but its log (2 entries) is shorter than ours (3)"),
        (4, 1, 3, 3, True, "same last term and same length: at least as up-to-date"),
        (5, 2, 1, 4, True, "its last term 4 is newer than ours (3), even though its log is shorter"),
    ]
    for term, cand, lli, llt, want, why in cases:
        reply = node.request_vote(RequestVoteArgs(term, cand, lli, llt))
        expect(reply.vote_granted == want,
               f"our log has terms [1, 3, 3]; candidate {cand} of term {term} with last_log_index={lli}, "
               f"last_log_term={llt} should {'get' if want else 'not get'} the vote: {why}")


@scenario(2, "initial election", 5, public=True, seeds=(1, 2, 3))
def ex2_initial_election(ctx, node_class, seed):
    """MIT InitialElection."""
    mit_initial_election(ctx, node_class, seed)


@scenario(2, "re-election", 5, seeds=(1, 2, 3))
def ex2_re_election(ctx, node_class, seed):
    """MIT ReElection: a lone node never wins (votes from failed RPCs or
    refusals must not count)."""
    mit_re_election(ctx, node_class, seed)


@scenario(2, "split votes stay safe", 5, seeds=(1, 2, 3))
def ex2_split_votes(ctx, node_class, seed):
    """Equal election timeouts: everyone becomes a candidate at once, over
    and over, for 3 s. The safety monitor checks that no term ever has two
    leaders (a double vote, or a refusal counted as a vote, would give two)."""
    c = cluster(ctx, 3, seed, node_class, config=Config(election_timeout=(0.150, 0.152)))
    c.run_for(3.0)
    terms = [c.get_state(i)[0] for i in range(3)]
    expect(max(terms) >= 2 or c.leader() is not None,
           f"after 3 s there is no leader and the terms are {terms}: candidates stopped trying (seed={seed})")


@scenario(2, "rejoin (election restriction)", 5, seeds=(1, 2, 3))
def ex2_rejoin(ctx, node_class, seed):
    """MIT Rejoin: the old leader, with a longer log but an older last
    term, must not win against a node that has the committed entries."""
    mit_rejoin(ctx, node_class, seed)


@scenario(2, "a majority of 4 and of 5", 10, public=True, seeds=(1,))
def ex2_majority(ctx, node_class, seed):
    """White-box: a candidate needs more than half of all the nodes,
    itself included: 3 of 4, 3 of 5 (2 of 4 is a tie, not a majority); a
    vote that arrives after it won changes nothing."""
    for n in (4, 5):
        c = frozen(ctx, node_class, seed, n=n)
        cand = c.nodes[0]
        for i in range(n):
            c.connect(i)
        for voter in c.nodes[1:]:
            voter.request_vote = types.MethodType(ConsensusModule.request_vote, voter)
            set_log(voter, [], term=4)
        with cand.mu:
            cand.current_term, cand.state, cand.voted_for = 5, CANDIDATE, 0
        votes = [1]
        for granted, peer in enumerate((1, 2), start=2):
            cand.go(cand.send_request_vote, peer, RequestVoteArgs(5, 0, 0, 0), votes)
            c.run_for(0.015)
            want = LEADER if 2 * granted > n else CANDIDATE
            expect(cand.state == want,
                   f"{n} nodes: with {granted} votes (its own included) candidate 0 must be {want}, it is "
                   f"{cand.state} (votes={votes})")
        cand.go(cand.send_request_vote, 3, RequestVoteArgs(5, 0, 0, 0), votes)
        c.run_for(0.015)
        loops = sum(1 for t in c.clock.live_tasks() if t.owner is cand and t.name.endswith(": run_heartbeats"))
        expect(loops == 1, f"{n} nodes: candidate 0 became leader, then one more vote arrived and it started "
                           f"{loops} heartbeat loops: a vote for an election already won must not make it "
                           "leader again (start_leader() resets next_index and match_index)")
        c.stop()


@scenario(2, "votes and terms are saved before answering", 5, public=True, seeds=(1,))
def ex2_saved(ctx, node_class, seed):
    """White-box, Figure 2: currentTerm and votedFor are updated on stable
    storage before responding to RPCs: a vote, and a newer term learnt from
    a reply, survive a crash."""
    c = frozen(ctx, node_class, seed)
    reply = c.nodes[2].request_vote(RequestVoteArgs(1, 1, 0, 0))
    expect(reply.vote_granted, "node 2 (term 0, never voted) refused its vote to candidate 1 of term 1")
    c.restart(2)
    expect((c.nodes[2].current_term, c.nodes[2].voted_for) == (1, 1),
           f"node 2 voted for 1 in term 1 and crashed: it came back with term {c.nodes[2].current_term}, "
           f"voted_for {c.nodes[2].voted_for}: persist() before the reply")
    cand, voter = c.nodes[0], c.nodes[1]
    voter.request_vote = types.MethodType(ConsensusModule.request_vote, voter)
    c.connect(0)
    c.connect(1)
    with cand.mu:
        cand.current_term, cand.state, cand.voted_for = 5, CANDIDATE, 0
    set_log(voter, [], term=7)
    cand.go(cand.send_request_vote, 1, RequestVoteArgs(5, 0, 0, 0), [1])
    c.run_for(0.015)
    expect(cand.current_term == 7, f"a reply of term 7 must make candidate 0 adopt term 7, it has {cand.current_term}")
    c.restart(0)
    expect(c.nodes[0].current_term == 7,
           f"candidate 0 adopted term 7 from a reply and crashed: it came back in term {c.nodes[0].current_term}: "
           "persist() after adopting a newer term")


# ==========================================================================
# Exercise 3: AppendEntries, the follower side
# ==========================================================================

exercise(3, "AppendEntries: the follower side", "03-append-entries",
         ClassSpec("MyNode", ConsensusModule, ("append_entries", "conflict_hint")))


def ae(term, prev, prev_term, entries=(), commit=0, leader=1):
    return AppendEntriesArgs(term, leader, prev, prev_term, [LogEntry(t, cmd) for t, cmd in entries], commit)


@scenario(3, "term rules and the timer", 10, public=True, seeds=(1,))
def ex3_term_rules(ctx, node_class, seed):
    """White-box: a request of an older term is refused with our term and
    does not reset the timer; a request of the current term resets it; a
    candidate hearing the leader of its term steps down; a newer term is adopted."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1], term=2)
    reply = node.append_entries(ae(1, 1, 1))
    expect(not reply.success and reply.term == 2,
           f"AppendEntries of term 1 to a node of term 2 must fail and carry term 2, got {reply}")
    expect(node.election_reset_event != c.now, "a stale leader (older term) must not reset the election timer")
    reply = node.append_entries(ae(2, 1, 1))
    expect(reply.success, f"a heartbeat of the current term whose prev entry matches must succeed, got {reply}")
    expect(node.election_reset_event == c.now,
           "AppendEntries from the current leader must reset the election timer (election_reset_event = now)")
    c.run_for(0.010)
    with node.mu:
        node.state = CANDIDATE
    reply = node.append_entries(ae(2, 1, 1))
    expect(node.state == FOLLOWER, f"a candidate that hears the leader of its own term must become follower, "
                                   f"it is {node.state}")
    reply = node.append_entries(ae(4, 1, 1))
    expect(node.current_term == 4 and reply.term == 4 and reply.success,
           f"a request of term 4 must be adopted (term now {node.current_term}, reply {reply})")


@scenario(3, "consistency check", 15, public=True, seeds=(1,))
def ex3_consistency(ctx, node_class, seed):
    """White-box: reply false if the log has no entry at prev_log_index
    whose term is prev_log_term (heartbeats too), with the conflict hint:
    our log length + 1 if too short, else the conflicting term and the
    first index we hold of it."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1, 2, 2, 2], term=3)
    cases = [  # (prev, prev_term, entries, success, hint, why)
        (6, 3, [(3, "x")], False, (5, 0), "prev_log_index 6 is past the end of our 4 entries"),
        (5, 3, [], False, (5, 0), "a heartbeat is checked too: we have no entry 5"),
        (4, 3, [(3, "x")], False, (2, 2), "our entry 4 has term 2, not 3; term 2 starts at index 2"),
        (1, 2, [], False, (1, 1), "our entry 1 has term 1, not 2"),
    ]
    for prev, prev_term, entries, success, hint, why in cases:
        before = show_log(node)
        reply = node.append_entries(ae(3, prev, prev_term, entries))
        expect(reply.success == success,
               f"log {before}: AppendEntries(prev_log_index={prev}, prev_log_term={prev_term}) should "
               f"{'succeed' if success else 'fail'}: {why}")
        expect((reply.conflict_index, reply.conflict_term) == hint,
               f"log {before}: after a failed check at prev_log_index={prev}, prev_log_term={prev_term} "
               f"the hint should be conflict_index={hint[0]}, conflict_term={hint[1]}, got "
               f"conflict_index={reply.conflict_index}, conflict_term={reply.conflict_term} ({why})")
        expect(show_log(node) == before, f"a failed consistency check must not change the log: {before} "
                                         f"became {show_log(node)}")
    reply = node.append_entries(ae(3, 0, 0, [(1, "e1"), (2, "e2")]))
    expect(reply.success, "prev_log_index 0 (before the first entry) always matches")


@scenario(3, "truncate only on conflict", 20, public=True, seeds=(1,))
def ex3_truncate(ctx, node_class, seed):
    """White-box: entries that already match stay (a stale, reordered
    request must not delete newer entries); at the first conflicting entry
    delete it and all that follow, then append the new ones."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1, 1, 1, 2], term=2, commands=["a", "b", "c", "d"])
    reply = node.append_entries(ae(2, 1, 1, [(1, "b")]))
    expect(reply.success, f"matching AppendEntries failed: {reply}")
    expect(show_log(node) == "[1:a, 1:b, 1:c, 2:d]",
           f"a stale AppendEntries(prev_log_index=1, entries=[1:b]) whose entries all match deleted entries: "
           f"[1:a, 1:b, 1:c, 2:d] became {show_log(node)} (Figure 2 step 3 deletes only on a conflict)")
    node.append_entries(ae(2, 2, 1, [(1, "c"), (2, "d"), (2, "e")]))
    expect(show_log(node) == "[1:a, 1:b, 1:c, 2:d, 2:e]",
           f"entries past the end must be appended: expected [1:a, 1:b, 1:c, 2:d, 2:e], got {show_log(node)}")
    node.append_entries(ae(3, 2, 1, [(3, "x")]))
    expect(show_log(node) == "[1:a, 1:b, 3:x]",
           f"entry 3 conflicts (term 1 vs 3): it and all that follow must go, then x appended: "
           f"expected [1:a, 1:b, 3:x], got {show_log(node)}")


@scenario(3, "commit index rule", 15, public=True, seeds=(1,))
def ex3_commit_rule(ctx, node_class, seed):
    """White-box, Figure 2 step 5: commit_index = min(leader_commit, index of
    the last new entry): never an entry the leader has not checked, never
    past our log, never backwards."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1, 1, 2, 2], term=3)
    node.append_entries(ae(3, 1, 1, [], commit=4))
    expect(node.commit_index == 1,
           f"log [1, 1, 2, 2]: a heartbeat with prev_log_index=1 and leader_commit=4 checked only entry 1, "
           f"so commit_index must become min(4, 1) = 1, got {node.commit_index}")
    node.append_entries(ae(3, 1, 1, [(1, "e2")], commit=4))
    expect(node.commit_index == 2, f"entries up to 2 checked, leader_commit=4: commit_index must be 2, "
                                   f"got {node.commit_index}")
    node.append_entries(ae(3, 2, 1, [(3, "y"), (3, "z")], commit=3))
    expect(node.commit_index == 3, f"leader_commit=3 with entries up to 4 checked: commit_index must be 3, "
                                   f"got {node.commit_index}")
    node.append_entries(ae(3, 4, 3, [], commit=1))
    expect(node.commit_index == 3, f"commit_index must never go backwards (3), got {node.commit_index}")


@scenario(3, "basic agreement", 5, public=True, seeds=(1, 2, 3))
def ex3_basic_agree(ctx, node_class, seed):
    """MIT BasicAgree."""
    mit_basic_agree(ctx, node_class, seed)


@scenario(3, "agreement after reconnection", 5, seeds=(1, 2, 3))
def ex3_fail_agree(ctx, node_class, seed):
    """MIT FailAgree: a follower that missed entries is repaired."""
    mit_fail_agree(ctx, node_class, seed)


@scenario(3, "rejoin", 5, seeds=(1, 2, 3))
def ex3_rejoin(ctx, node_class, seed):
    """MIT Rejoin: conflicting entries of an old leader are overwritten."""
    mit_rejoin(ctx, node_class, seed)


@scenario(3, "unreliable agreement", 10, seeds=(1, 2))
def ex3_unreliable(ctx, node_class, seed):
    """MIT UnreliableAgree: drops and reordering; a follower
    that truncates on stale requests loses committed entries."""
    mit_unreliable_agree(ctx, node_class, seed)


@scenario(3, "conflict hint: the whole term", 5, public=True, seeds=(1,))
def ex3_conflict_term_start(ctx, node_class, seed):
    """White-box: the conflict index is the first index of the conflicting
    term, however long that term is and wherever it starts (index 1 included)."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    cases = [  # (log terms, prev, prev_term, hint)
        ([1, 1, 1, 2], 3, 2, (1, 1)),
        ([1, 1, 2, 2], 4, 3, (3, 2)),
        ([1, 2, 2, 2, 2], 5, 3, (2, 2)),
    ]
    for terms, prev, prev_term, hint in cases:
        set_log(node, terms, term=3)
        reply = node.append_entries(ae(3, prev, prev_term))
        expect((reply.conflict_index, reply.conflict_term) == hint,
               f"log terms {terms}: a failed check at prev_log_index={prev}, prev_log_term={prev_term} should "
               f"answer conflict_index={hint[0]}, conflict_term={hint[1]} (the first index of our term "
               f"{hint[1]}), got conflict_index={reply.conflict_index}, conflict_term={reply.conflict_term}")


@scenario(3, "term and entries are saved before answering", 5, public=True, seeds=(1,))
def ex3_saved(ctx, node_class, seed):
    """White-box, Figure 2: a newer term learnt from AppendEntries, and the
    entries appended, are on stable storage before the reply: they survive a crash."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [], term=2)
    node.append_entries(ae(4, 0, 0))
    c.restart(0)
    node = c.nodes[0]
    expect(node.current_term == 4, f"a heartbeat of term 4 made node 0 adopt term 4; after a crash it has term "
                                   f"{node.current_term}: persist() after adopting a newer term")
    node.append_entries(ae(4, 0, 0, [(4, "x"), (4, "y")]))
    c.restart(0)
    expect(show_log(c.nodes[0]) == "[4:x, 4:y]",
           f"node 0 appended [4:x, 4:y] and crashed: it came back with {show_log(c.nodes[0])}: persist() after "
           "changing the log, before the reply")


@scenario(3, "commit index never goes back", 5, public=True, seeds=(1,))
def ex3_commit_back(ctx, node_class, seed):
    """White-box, Figure 2 step 5: a late request that checked fewer entries
    than we have committed must not lower commit_index, even when its
    leader_commit is higher than ours."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1, 1, 1, 1], term=1)
    node.append_entries(ae(1, 4, 1, [], commit=3))
    expect(node.commit_index == 3, f"leader_commit=3 with 4 entries checked: commit_index must be 3, got "
                                   f"{node.commit_index}")
    node.append_entries(ae(1, 1, 1, [], commit=4))
    expect(node.commit_index == 3,
           f"a late heartbeat (prev_log_index=1, leader_commit=4) checked entry 1 only: commit_index must stay 3, "
           f"not go back to min(4, 1) = 1; got {node.commit_index}")


# ==========================================================================
# Exercise 4: the leader
# ==========================================================================

exercise(4, "The leader: commit index and next_index backup", "04-the-leader",
         ClassSpec("MyNode", ConsensusModule, ("send_append_entries", "advance_commit_index", "backup_index")))


def make_leader(node, terms, term, match):
    set_log(node, terms, term=term)
    node.state = LEADER
    node.commit_index = 0
    node.match_index = dict(match)
    node.next_index = {p: len(terms) + 1 for p in match}


@scenario(4, "commit rule (Figure 8)", 15, public=True, seeds=(1,))
def ex4_commit_rule(ctx, node_class, seed):
    """White-box: a leader commits the highest index N stored on a majority
    (itself included) only if log[N].term == currentTerm (§5.4.2); older
    entries get committed along with it, never by counting replicas."""
    c = frozen(ctx, node_class, seed, n=5)
    node = c.nodes[0]
    make_leader(node, [1, 1, 2, 3], 3, {1: 3, 2: 3, 3: 0, 4: 0})
    locked(node, node.advance_commit_index)
    expect(node.commit_index == 0,
           f"leader of term 3, log terms [1, 1, 2, 3], match_index {{1: 3, 2: 3, 3: 0, 4: 0}}: index 3 is on a "
           f"majority but has term 2, so nothing may be committed by counting (Figure 8); "
           f"commit_index became {node.commit_index}")
    node.match_index[3] = 4
    locked(node, node.advance_commit_index)
    expect(node.commit_index == 0,
           f"match_index {{1: 3, 2: 3, 3: 4, 4: 0}}: index 4 (term 3) is on only 2 of 5 nodes and index 3 has "
           f"term 2: commit_index must stay 0, got {node.commit_index}")
    node.match_index[1] = 4
    locked(node, node.advance_commit_index)
    expect(node.commit_index == 4,
           f"match_index {{1: 4, 2: 3, 3: 4, 4: 0}}: index 4 (term 3) is on 3 of 5 nodes: commit_index must "
           f"become 4 (committing 1-3 with it), got {node.commit_index}")
    node.match_index = {1: 1, 2: 1, 3: 1, 4: 1}
    locked(node, node.advance_commit_index)
    expect(node.commit_index == 4, f"commit_index must never go backwards (4), got {node.commit_index}")


@scenario(4, "next_index backup", 15, public=True, seeds=(1,))
def ex4_backup(ctx, node_class, seed):
    """White-box, the fast backup: a follower that refuses sends its
    conflict term and the first index it holds of it. If the leader has
    entries of that term, next_index = its last entry of that term + 1;
    otherwise next_index = conflict_index; a follower whose log is too
    short sends conflict_term 0 and its length + 1."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    make_leader(node, [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], 6, {1: 0, 2: 0})
    cases = [  # (conflict_index, conflict_term, next_index, why)
        (6, 5, 8, "the leader has term 5 (indexes 6-7): next_index = its last term-5 entry + 1 = 8"),
        (4, 2, 4, "the leader has no entry of term 2: skip the follower's whole term 2, next_index = 4"),
        (3, 0, 3, "the follower's log is too short (2 entries): next_index = 3"),
        (2, 1, 4, "the leader has term 1 (indexes 1-3): next_index = 4"),
    ]
    for ci, ct, want, why in cases:
        got = locked(node, node.backup_index, AppendEntriesReply(6, False, ci, ct))
        expect(got == want, f"leader log terms [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], reply conflict_index={ci}, "
                            f"conflict_term={ct}: backup_index should return {want} ({why}), got {got}")


@scenario(4, "handling AppendEntries replies", 15, public=True, seeds=(1,))
def ex4_replies(ctx, node_class, seed):
    """White-box: on success, match_index = prev_log_index + len(entries) of
    that request (replies come late and out of order), next_index follows;
    on failure next_index backs up with backup_index, never below
    match_index + 1; a reply to a request of an older term is ignored; a
    reply with a newer term makes the leader step down."""
    c = frozen(ctx, node_class, seed)
    leader, f = c.nodes[0], c.nodes[1]
    c.connect(0)
    c.connect(1)
    make_leader(leader, [1, 1, 1], 1, {1: 0, 2: 0})
    set_log(f, [1], term=1)

    def send(args):
        leader.go(leader.send_append_entries, 1, args)
        c.run_for(0.015)

    send(ae(1, 0, 0, [(1, "e1")], leader=0))
    expect(leader.match_index[1] == 1,
           f"leader log [e1, e2, e3]: a success reply to AppendEntries(prev_log_index=0, entries=[e1]) proves "
           f"the follower holds entry 1 only: match_index[1] must be 1 (prev_log_index + len(entries)), "
           f"got {leader.match_index[1]}")
    expect(2 <= leader.next_index[1] <= 4, f"next_index[1] must be in 2..4 after that success, got "
                                           f"{leader.next_index[1]}")
    send(ae(1, 3, 1, [], leader=0))
    expect(leader.next_index[1] == 2,
           f"the follower (log of 1 entry) refused prev_log_index=3 with conflict_index=2, conflict_term=0: "
           f"next_index[1] must back up to 2 (backup_index), got {leader.next_index[1]}")
    expect(leader.match_index[1] == 1, f"a refusal must not change match_index (1), got {leader.match_index[1]}")
    with leader.mu:
        leader.current_term = 2
    send(ae(1, 1, 1, [(1, "e2"), (1, "e3")], leader=0))
    expect(leader.match_index[1] == 1,
           f"the leader is now in term 2; a success reply to its request of term 1 is stale and must be "
           f"ignored (compare args.term with current_term): match_index[1] became {leader.match_index[1]}")
    set_log(f, [1], term=5)
    send(ae(2, 3, 1, [], leader=0))
    expect(leader.state == FOLLOWER and leader.current_term == 5,
           f"a reply carrying term 5 must make the leader (term 2) adopt term 5 and step down; it is "
           f"{leader.state} in term {leader.current_term}")


@scenario(4, "figure 8 (scripted)", 15, public=True, seeds=(1, 2, 3))
def ex4_figure8_scripted(ctx, node_class, seed):
    """The paper's Figure 8 with crashes: X (old term) reaches a majority
    under a later leader; a leader that commits X by counting loses a
    committed entry when S5 (with Y of a newer term) is elected."""
    c = cluster(ctx, 5, seed, node_class)
    s1 = c.check_one_leader()
    s2, s3, s4, s5 = [(s1 + k) % 5 for k in range(1, 5)]
    for i in (s3, s4, s5):
        c.crash(i)
    expect(c.submit("X", node=s1)[2], f"leader {s1} refused X (seed={seed})")
    c.run_for(0.2)
    c.crash(s1)
    c.crash(s2)
    restarted = (s3, s4, s5)
    for i in restarted:
        c.restart(i)
    expect(c.run_until(lambda c: c.leader() is not None, 10), f"no leader among {restarted} (seed={seed})")
    s5 = c.leader()
    s3, s4 = [i for i in restarted if i != s5]
    c.submit("Y", node=s5)
    c.crash(s5)
    c.crash(s4)
    c.restart(s1)
    c.restart(s2)
    expect(c.run_until(lambda c: c.leader() in (s1, s2), 10), f"neither {s1} nor {s2} got elected (seed={seed})")
    c.run_for(0.3)
    c.crash(s1)
    c.crash(s2)
    c.restart(s5)
    c.restart(s4)
    c.run_until(lambda c: c.get_state(s5)[1], 10)
    c.run_for(0.5)


@scenario(4, "no commit without a majority", 5, seeds=(1, 2, 3))
def ex4_fail_no_agree(ctx, node_class, seed):
    """MIT FailNoAgree."""
    mit_fail_no_agree(ctx, node_class, seed)


@scenario(4, "backup over wrong logs", 5, seeds=(1, 2))
def ex4_backup_black_box(ctx, node_class, seed):
    """MIT Backup: 2 x 50 stale entries repaired within one()'s windows."""
    mit_backup(ctx, node_class, seed)


@scenario(4, "unreliable agreement", 10, seeds=(1, 2))
def ex4_unreliable(ctx, node_class, seed):
    """Drops and reordering: match_index must come from the request that
    succeeded (prev_log_index + len(entries)), not from the leader's log now."""
    mit_unreliable_agree(ctx, node_class, seed)


@scenario(4, "commit rule: majorities and runs", 10, public=True, seeds=(1,))
def ex4_commit_more(ctx, node_class, seed):
    """White-box: a majority is more than half of all nodes (2 of 4 is not);
    the leader commits the highest index of its term on a majority, not a
    lower one, and commit_index never goes back within one call."""
    c = frozen(ctx, node_class, seed, n=4)
    node = c.nodes[0]
    make_leader(node, [1], 1, {1: 1, 2: 0, 3: 0})
    locked(node, node.advance_commit_index)
    expect(node.commit_index == 0, f"4 nodes, index 1 on the leader and node 1 only (2 of 4, not a majority): "
                                   f"commit_index must stay 0, got {node.commit_index}")
    node.match_index[2] = 1
    locked(node, node.advance_commit_index)
    expect(node.commit_index == 1, f"index 1 on 3 of 4 nodes: commit_index must become 1, got {node.commit_index}")
    c.stop()
    c = frozen(ctx, node_class, seed, n=5)
    node = c.nodes[0]
    cases = [  # (match_index, commit_index wanted)
        ({1: 2, 2: 2, 3: 0, 4: 0}, 2),
        ({1: 3, 2: 3, 3: 0, 4: 0}, 3),
    ]
    for match, want in cases:
        make_leader(node, [3, 3, 3], 3, match)
        locked(node, node.advance_commit_index)
        expect(node.commit_index == want,
               f"leader of term 3, log terms [3, 3, 3], match_index {match}: index {want} is the highest on a "
               f"majority, so commit_index must become {want}, got {node.commit_index}")


@scenario(4, "next_index after replies", 10, public=True, seeds=(1,))
def ex4_next_index(ctx, node_class, seed):
    """White-box: after a refusal next_index = backup_index(reply), but
    never at or below match_index; after a success next_index moves past
    what the request proved; backup finds a term that starts at index 1;
    a newer term in a reply is saved before anything else."""
    c = frozen(ctx, node_class, seed)
    leader, f = c.nodes[0], c.nodes[1]
    c.connect(0)
    c.connect(1)
    make_leader(leader, [1, 4, 4, 5], 5, {1: 0, 2: 0})
    got = locked(leader, leader.backup_index, AppendEntriesReply(5, False, 1, 1))
    expect(got == 2, f"leader log terms [1, 4, 4, 5], reply conflict_index=1, conflict_term=1: the leader's last "
                     f"entry of term 1 is index 1, so backup_index should return 2, got {got}")

    def answer(reply, args):
        f.append_entries = lambda a: reply
        leader.go(leader.send_append_entries, 1, args)
        c.run_for(0.015)

    answer(AppendEntriesReply(5, False, 3, 0), ae(5, 4, 5, leader=0))
    expect(leader.next_index[1] == 3, f"a refusal with conflict_index=3, conflict_term=0 (match_index 0): "
                                      f"next_index[1] must be 3, got {leader.next_index[1]}")
    answer(AppendEntriesReply(5, True), ae(5, 2, 4, [(4, "e3"), (5, "e4")], leader=0))
    expect(leader.match_index[1] == 4 and leader.next_index[1] == 5,
           f"a success for prev_log_index=2 with 2 entries: match_index[1] must be 4 and next_index[1] 5, got "
           f"{leader.match_index[1]} and {leader.next_index[1]}")
    answer(AppendEntriesReply(5, False, 1, 0), ae(5, 4, 5, leader=0))
    expect(leader.next_index[1] == 5,
           f"match_index[1] is 4: a late refusal hinting index 1 must not move next_index[1] below 5 "
           f"(max(match_index + 1, backup_index)), got {leader.next_index[1]}")
    answer(AppendEntriesReply(9, False), ae(5, 4, 5, leader=0))
    expect(leader.current_term == 9, f"a reply of term 9 must make the leader adopt it, it has {leader.current_term}")
    c.restart(0)
    expect(c.nodes[0].current_term == 9, f"the leader adopted term 9 from a reply and crashed: it came back in "
                                         f"term {c.nodes[0].current_term}: persist() after adopting it")


# ==========================================================================
# Exercise 5: persistence
# ==========================================================================

exercise(5, "Persistence: what to save, and restore on restart", "05-persistence",
         ClassSpec("MyNode", ConsensusModule, ("persist", "restore")))


def node_state(node):
    return node.current_term, node.voted_for, [(e.term, e.command) for e in node.log]


@scenario(5, "state survives a restart", 20, public=True, seeds=(1, 2))
def ex5_state_survives(ctx, node_class, seed):
    """White-box: after entries, elections and a vote, crash and restart
    every node: its current_term, voted_for and log are exactly as before."""
    c = cluster(ctx, 3, seed, node_class)
    c.one("a", 3)
    leader = c.check_one_leader()
    c.disconnect(leader)
    c.one("b", 2)
    c.submit("lost", node=leader)
    c.run_for(0.1)
    for i in range(3):
        before = node_state(c.nodes[i])
        c.restart(i)
        after = node_state(c.nodes[i])
        for what, b, a in zip(("current_term", "voted_for", "log"), before, after):
            expect(a == b, f"node {i} restarted with {what} = {a!r}, but before the crash it had {b!r} "
                           f"(persist() must save it and restore() must load it; seed={seed})")


@scenario(5, "a vote survives a restart", 20, public=True, seeds=(1,))
def ex5_vote_survives(ctx, node_class, seed):
    """White-box: a node votes for candidate 1 in term 1, crashes and
    restarts: candidate 2 of term 1 must not get its vote (one vote per
    term, across crashes, needs voted_for on disk)."""
    c = frozen(ctx, node_class, seed)
    reply = c.nodes[0].request_vote(RequestVoteArgs(1, 1, 0, 0))
    expect(reply.vote_granted, "node 0 refused its first vote of term 1")
    c.restart(0)
    node = c.nodes[0]
    expect(node.current_term == 1, f"the restarted node forgot its term: {node.current_term} instead of 1")
    reply = node.request_vote(RequestVoteArgs(1, 2, 0, 0))
    expect(not reply.vote_granted, "node 0 voted for 1 in term 1, crashed, restarted and then voted for 2 in "
                                   "term 1: voted_for must be persisted")


@scenario(5, "basic persistence", 15, seeds=(1, 2, 3))
def ex5_persist1(ctx, node_class, seed):
    """MIT Persist1."""
    mit_persist1(ctx, node_class, seed)


@scenario(5, "more persistence", 10, seeds=(1, 2))
def ex5_persist2(ctx, node_class, seed):
    """MIT Persist2."""
    mit_persist2(ctx, node_class, seed)


@scenario(5, "partitioned leader and crashes", 15, seeds=(1, 2, 3))
def ex5_persist3(ctx, node_class, seed):
    """MIT Persist3."""
    mit_persist3(ctx, node_class, seed)


@scenario(5, "figure 8 with crashes", 10, seeds=(1, 2))
def ex5_figure8(ctx, node_class, seed):
    """MIT Figure8: 1000 iterations; leaders crash right after accepting."""
    mit_figure8(ctx, node_class, seed)


@scenario(5, "persistence goes through Storage", 10, public=True, seeds=(1,))
def ex5_through_storage(ctx, node_class, seed):
    """White-box: persist() writes to self.storage and restore() reads
    self.storage, nothing else: a node of another cluster starts empty, and
    a node given the bytes another one saved comes back with its term and
    vote. (State kept in a class attribute or a global also survives a
    restart, but not a real crash: the grader's process is not the one
    that restarts.)"""
    a = frozen(ctx, node_class, seed)
    reply = a.nodes[0].request_vote(RequestVoteArgs(1, 1, 0, 0))
    expect(reply.vote_granted, "node 0 refused its first vote of term 1")
    saved = a.nodes[0].storage.read_state()
    expect(bool(saved), "node 0 voted, yet self.storage holds no state: persist() must save through "
                        "self.storage.save(state)")
    b = frozen(ctx, node_class, seed + 1)
    node = b.nodes[0]
    expect((node.current_term, node.voted_for) == (0, None),
           f"node 0 of a brand-new cluster (empty storage) started with term {node.current_term} and voted_for "
           f"{node.voted_for}: restore() must read self.storage, not state kept elsewhere")
    node.storage.save(saved)
    b.restart(0)
    node = b.nodes[0]
    expect((node.current_term, node.voted_for) == (1, 1),
           f"node 0 restarted on the bytes another node 0 saved after voting for 1 in term 1; it came back with "
           f"term {node.current_term}, voted_for {node.voted_for}")


# ==========================================================================
# Exercise 6: snapshots
# ==========================================================================

exercise(6, "Snapshots: compaction and InstallSnapshot", "06-snapshots",
         ClassSpec("MyNode", ConsensusModule, ("snapshot", "install_snapshot", "send_install_snapshot",
                                               "send_heartbeats")))

MAX_LOG_BYTES = 2000  # MIT's MAXLOGSIZE


@scenario(6, "snapshot trims the log", 15, public=True, seeds=(1,))
def ex6_snapshot_trims(ctx, node_class, seed):
    """White-box: snapshot(index) drops the entries up to index, records
    last_included_index/term, keeps the later entries (index translation:
    log[k] is entry last_included_index + 1 + k), and saves the snapshot."""
    c = cluster(ctx, 3, seed, node_class)
    for k in range(1, 9):
        c.one(f"c{k}", 3)
    node = c.nodes[c.check_one_leader()]
    terms = [e.term for e in node.log]
    ctx.not_repeatable()
    node.snapshot(5, b"five")
    expect(node.last_included_index == 5 and node.last_included_term == terms[4],
           f"after snapshot(5): last_included_index={node.last_included_index} (want 5), "
           f"last_included_term={node.last_included_term} (want {terms[4]})")
    expect([e.command for e in node.log] == ["c6", "c7", "c8"],
           f"after snapshot(5) of 8 entries the log must hold entries 6-8 (c6, c7, c8), "
           f"it holds {[e.command for e in node.log]}")
    expect(node.storage.read_snapshot() == b"five",
           "snapshot(5, data) must persist data as the snapshot: persist(data)")
    node.snapshot(3, b"three")
    expect(node.last_included_index == 5 and len(node.log) == 3,
           "an older snapshot (3 after 5) must be ignored")
    node.snapshot(7, b"seven")
    expect(node.last_included_index == 7 and [e.command for e in node.log] == ["c8"],
           f"a second snapshot(7) must translate indexes from the first one: log should be [c8], "
           f"got {[e.command for e in node.log]} with last_included_index={node.last_included_index}")
    c.one("c9", 3)


@scenario(6, "install snapshot (follower)", 15, public=True, seeds=(1,))
def ex6_install_white_box(ctx, node_class, seed):
    """White-box, Figure 13: a stale or old snapshot changes nothing; a
    snapshot whose last entry we hold keeps the entries after it; otherwise
    the whole log goes; commit_index, last_applied follow the snapshot and
    the service gets it (pending_snapshot)."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1, 1, 2, 2, 2], term=2)
    node.commit_index = node.last_applied = 2
    reply = node.install_snapshot(InstallSnapshotArgs(1, 1, 4, 2, b"old"))
    expect(reply.term == 2 and node.last_included_index == 0,
           "a snapshot from an older term (1 < 2) must be refused and change nothing")
    node.install_snapshot(InstallSnapshotArgs(2, 1, 2, 1, b"stale"))
    expect(node.last_included_index == 0 and len(node.log) == 5,
           "a snapshot up to 2 when 2 entries are already committed is stale: it must change nothing "
           f"(last_included_index={node.last_included_index}, log of {len(node.log)})")
    node.install_snapshot(InstallSnapshotArgs(2, 1, 3, 2, b"three"))
    expect(node.last_included_index == 3 and node.last_included_term == 2,
           f"snapshot up to 3: last_included_index/term should be 3/2, got "
           f"{node.last_included_index}/{node.last_included_term}")
    expect([e.command for e in node.log] == ["e4", "e5"],
           f"we hold entry 3 with the snapshot's term 2: keep entries 4-5 after it, got {show_log(node)}")
    expect(node.commit_index == 3 and node.last_applied == 3,
           f"commit_index and last_applied must become 3, got {node.commit_index} and {node.last_applied}")
    expect(node.snapshot_data == b"three" and node.pending_snapshot is not None
           and node.pending_snapshot.snapshot_index == 3,
           "the snapshot must be kept (snapshot_data) and handed to the service (pending_snapshot)")
    expect(node.storage.read_snapshot() == b"three", "the installed snapshot must be persisted")
    node.install_snapshot(InstallSnapshotArgs(3, 1, 9, 3, b"nine"))
    expect(node.last_included_index == 9 and node.log == [],
           f"a snapshot past our log (up to 9) replaces the whole log: log {show_log(node)}")


def snap_common(ctx, node_class, seed, disconnect, reliable, crash, iters=30):
    """MIT snapcommon: 3 nodes, snapshots every 10 entries; a victim is
    disconnected or crashed while entries pile up, then must catch up
    (usually with InstallSnapshot); the persisted log stays small."""
    rng = random.Random(seed)
    c = cluster(ctx, 3, seed, node_class, snapshot_interval=10)
    if not reliable:
        c.set_reliable(False)
    c.one(rand_int(rng), 3, True)
    leader1 = c.check_one_leader()
    for i in range(iters):
        victim, sender = (leader1 + 1) % 3, leader1
        if i % 3 == 1:
            sender, victim = (leader1 + 1) % 3, leader1
        if disconnect:
            c.disconnect(victim)
            c.one(rand_int(rng), 2, True)
        if crash:
            c.crash(victim)
            c.one(rand_int(rng), 2, True)
        for _ in range(5 + rng.randrange(10)):
            c.submit(rand_int(rng), node=sender)
        c.one(rand_int(rng), 3 if not (disconnect or crash) else 2, True)
        size = max(c.persisted_size(j) for j in range(3))
        expect(size < MAX_LOG_BYTES, f"Log size too large: {size} bytes persisted (snapshot excluded); "
                                     f"the log must be trimmed by snapshots (seed={seed})")
        if disconnect:
            c.connect(victim)
            c.one(rand_int(rng), 3, True)
            leader1 = c.check_one_leader()
        if crash:
            c.restart(victim)
            c.one(rand_int(rng), 3, True)
            leader1 = c.check_one_leader()


@scenario(6, "snapshots basic", 10, public=True, seeds=(1, 2))
def ex6_basic(ctx, node_class, seed):
    """MIT SnapshotBasic."""
    snap_common(ctx, node_class, seed, False, True, False)


@scenario(6, "install snapshots (disconnect)", 10, seeds=(1, 2))
def ex6_install(ctx, node_class, seed):
    """MIT SnapshotInstall: a follower behind the snapshot gets InstallSnapshot."""
    snap_common(ctx, node_class, seed, True, True, False)


@scenario(6, "install snapshots (crash)", 10, seeds=(1, 2))
def ex6_install_crash(ctx, node_class, seed):
    """MIT SnapshotInstallCrash."""
    snap_common(ctx, node_class, seed, False, True, True)


@scenario(6, "install snapshots (unreliable)", 10, seeds=(1, 2))
def ex6_install_unreliable(ctx, node_class, seed):
    """MIT SnapshotInstallUnreliable: duplicated and reordered
    InstallSnapshot must never move a node backwards."""
    snap_common(ctx, node_class, seed, True, False, False)


@scenario(6, "snapshot survives restarts", 10, seeds=(1, 2, 3))
def ex6_init(ctx, node_class, seed):
    """MIT SnapshotInit + AllCrash: crash everyone after a snapshot, twice;
    the restarted nodes continue from it and indexes never go back."""
    rng = random.Random(seed)
    c = cluster(ctx, 3, seed, node_class, snapshot_interval=10)
    c.one(rand_int(rng), 3, True)
    for _ in range(11):
        c.one(rand_int(rng), 3, True)
    index1 = c.one(rand_int(rng), 3, True)
    for i in range(3):
        c.crash(i)
    for i in range(3):
        c.restart(i)
    c.one(rand_int(rng), 3, True)
    for i in range(3):
        c.crash(i)
    for i in range(3):
        c.restart(i)
    index2 = c.one(rand_int(rng), 3, True)
    expect(index2 >= index1 + 2, f"index decreased from {index1} to {index2} across restarts (seed={seed})")


@scenario(6, "install snapshot: more follower rules", 10, public=True, seeds=(1,))
def ex6_install_more(ctx, node_class, seed):
    """White-box, Figure 13 with Figure 2's term rules: a candidate hearing
    the leader of its term steps down and resets its timer; the reply
    carries our term; a follower that already has a snapshot keeps the
    entries after the new one (indexes translated); the service gets the
    snapshot at once (and only the snapshot); a newer term is adopted and
    saved even when the snapshot itself is stale; a leader ignores a stale one;
    a log that disagrees with the snapshot (another term at its last index) goes."""
    c = frozen(ctx, node_class, seed)
    node = c.nodes[0]
    set_log(node, [1, 2, 2, 2], term=2, commands=["e3", "e4", "e5", "e6"])
    node.last_included_index, node.last_included_term = 2, 1
    node.commit_index = node.last_applied = 2
    node.state = CANDIDATE
    data = c.services[0].dump()  # what the service can load
    reply = node.install_snapshot(InstallSnapshotArgs(2, 1, 4, 2, data))
    expect(reply is not None and reply.term == 2, f"InstallSnapshot must reply with our term 2, got {reply!r}")
    expect(node.state == FOLLOWER, f"a candidate that hears the leader of its term must become follower, it is "
                                   f"{node.state}")
    expect([e.command for e in node.log] == ["e5", "e6"],
           f"log of entries 3-6 after a snapshot up to 2; a snapshot up to 4 whose term we hold must keep "
           f"entries 5-6 (log[k] is entry last_included_index + 1 + k), got {[e.command for e in node.log]}")
    msg = node.pending_snapshot
    expect(msg is None or (msg.snapshot_valid and not msg.command_valid),
           f"the service must get a snapshot, not a command: pending_snapshot={msg!r}")
    c.run_for(0.010)
    got = [m for m in c.applied(0) if m.snapshot_valid]
    expect(got and got[-1].snapshot_index == 4,
           "10 ms after InstallSnapshot the service still has not got the snapshot up to 4: wake the applier "
           "(commit_ready.try_send(True))")
    c.run_for(0.005)
    node.install_snapshot(InstallSnapshotArgs(2, 1, 5, 2, data))
    expect(node.election_reset_event == c.now,
           "InstallSnapshot from the current leader must reset the election timer (election_reset_event = now)")
    node.install_snapshot(InstallSnapshotArgs(5, 1, 3, 2, data))
    expect(node.current_term == 5 and node.state == FOLLOWER,
           f"a snapshot of term 5 (stale: up to 3 < 5) must still make us adopt term 5; term {node.current_term}")
    c.restart(0)
    expect(c.nodes[0].current_term == 5, f"node 0 adopted term 5 and crashed: it came back in term "
                                         f"{c.nodes[0].current_term}: persist() after adopting a newer term")
    node = c.nodes[1]
    set_log(node, [1], term=3)
    node.state = LEADER
    reply = node.install_snapshot(InstallSnapshotArgs(2, 2, 1, 1, b"old"))
    expect(node.state == LEADER and node.current_term == 3 and reply.term == 3,
           f"a leader of term 3 must ignore InstallSnapshot of term 2 and answer term 3; it is {node.state} of "
           f"term {node.current_term}")
    node = c.nodes[2]
    set_log(node, [1, 1, 1, 1], term=2)
    node.commit_index = node.last_applied = 1
    node.install_snapshot(InstallSnapshotArgs(2, 1, 3, 2, data))
    expect(node.last_included_index == 3 and node.log == [],
           f"log terms [1, 1, 1, 1], a snapshot up to 3 of term 2: our entry 3 has term 1, so our log disagrees "
           f"with the snapshot and all of it goes (entry 4 too); the log is {show_log(node)}")


@scenario(6, "InstallSnapshot replies (leader)", 10, public=True, seeds=(1,))
def ex6_snapshot_replies(ctx, node_class, seed):
    """White-box: after a snapshot is accepted, match_index and next_index
    move up to it (never back); a reply to an older term's request is
    ignored; a reply with a newer term makes the leader step down and save
    that term; only a leader sends heartbeats."""
    from ..messages import InstallSnapshotReply
    c = frozen(ctx, node_class, seed)
    leader, f = c.nodes[0], c.nodes[1]
    c.connect(0)
    c.connect(1)
    make_leader(leader, [1, 2], 3, {1: 0, 2: 0})

    def answer(term, args):
        f.install_snapshot = lambda a: InstallSnapshotReply(term)
        leader.go(leader.send_install_snapshot, 1, args)
        c.run_for(0.015)

    answer(3, InstallSnapshotArgs(3, 0, 5, 2, b"five"))
    expect(leader.state == LEADER and leader.match_index[1] == 5 and leader.next_index[1] == 6,
           f"follower 1 took a snapshot up to 5 (reply of our term 3): the leader stays leader with match_index[1]"
           f" = 5, next_index[1] = 6; it is {leader.state}, {leader.match_index[1]}, {leader.next_index[1]}")
    with leader.mu:
        leader.current_term = 4
    answer(4, InstallSnapshotArgs(3, 0, 8, 2, b"eight"))
    expect(leader.match_index[1] == 5,
           f"the leader is in term 4 now; a reply to its snapshot request of term 3 is stale and must be ignored: "
           f"match_index[1] became {leader.match_index[1]}")
    answer(4, InstallSnapshotArgs(4, 0, 2, 1, b"two"))
    expect(leader.match_index[1] == 5 and leader.next_index[1] == 6,
           f"a late reply for a snapshot up to 2 must not move match_index/next_index back from 5/6, got "
           f"{leader.match_index[1]}/{leader.next_index[1]}")
    answer(7, InstallSnapshotArgs(4, 0, 6, 2, b"six"))
    expect(leader.state == FOLLOWER and leader.current_term == 7,
           f"a reply carrying term 7 must make the leader adopt term 7 and step down; it is {leader.state} in "
           f"term {leader.current_term}")
    heard = []
    f.append_entries = lambda a: heard.append(a) or AppendEntriesReply(7, True)
    f.install_snapshot = lambda a: heard.append(a) or InstallSnapshotReply(7)
    leader.send_heartbeats()
    c.run_for(0.015)
    expect(not heard, f"node 0 is a follower now, yet send_heartbeats() sent {heard[:1]!r}: only a leader sends them")
    c.restart(0)
    expect(c.nodes[0].current_term == 7, f"the leader adopted term 7 from a reply and crashed: it came back in "
                                         f"term {c.nodes[0].current_term}: persist() after adopting it")


# ==========================================================================
# Exercise 7: KV exactly-once
# ==========================================================================

exercise(7, "A KV service with exactly-once clerks", "07-kv-exactly-once",
         ClassSpec("MyKVStore", KVStore, ("apply", "dump", "load")),
         ClassSpec("MyClerk", Clerk, ("request",)))


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
        entry = HistoryEntry(clerk.client_id, kind, key, value, history.stamp(clock.now()))
        history.append(entry)
        result = request(kind, key, value)  # ClerkTimeout leaves ret=None: "maybe applied"
        entry.output, entry.ret = result, history.stamp(clock.now())
        return result

    clerk.request = recorded
    return clerk


def kv_cluster(ctx: ScenarioContext, impl: KVImpl, seed: int, n: int = 3, **options) -> KVCluster:
    kv = KVCluster(n, seed=seed, service_class=graded_service(impl.store), watchdog=ctx.watchdog,
                   clerk_timeout=5.0, **options)
    kv.graded_history = _History()
    ctx.not_repeatable()  # clerks drive it from outside the nodes: rerun() cannot repeat this run
    return ctx.keep(kv)


def check_history(kv, seed, what):
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


@scenario(7, "dedup table", 15, public=True, seeds=(1,))
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


@scenario(7, "basic operations", 10, public=True, seeds=(1,))
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


@scenario(7, "lost replies: retry with the same seq", 20, public=True, seeds=(1, 2))
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
    gave_up = [e for e in kv.graded_history if e.ret is None]
    if gave_up:
        e = gave_up[0]
        raise Failed(f"client {e.client_id}'s {e.kind}({e.key!r}) got no answer, although the servers were up "
                     f"and only replies were lost: a clerk must keep retrying until a server answers (seed={seed})")
    check_history(kv, seed, "lost replies")


@scenario(7, "duplicated requests", 15, seeds=(1, 2))
def ex7_duplicates(ctx, impl, seed):
    """The network delivers 30 % of requests twice: the state machine must
    apply each operation once."""
    kv = kv_cluster(ctx, impl, seed)
    kv.check_one_leader()
    kv.set_network(duplicate=0.3)
    done = run_clients(kv, impl, seed, clients=3, ops=10)
    kv.run_until(lambda kv: len(done) == 3, 60)
    appended_once(kv, seed)
    check_history(kv, seed, "duplicated requests")


@scenario(7, "leader changes", 15, seeds=(1, 2))
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


@scenario(7, "crashes and snapshots", 15, seeds=(1, 2))
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


@scenario(7, "finding the leader among 4", 10, seeds=(1, 2))
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
