"""Helpers shared by the scenarios: checks, clusters, white-box benches."""

from __future__ import annotations

import random

from ...cluster import Cluster
from ...messages import AppendEntriesArgs, CMState, LogEntry
from ..context import ScenarioContext

FOLLOWER, CANDIDATE, LEADER = CMState.FOLLOWER, CMState.CANDIDATE, CMState.LEADER
ET = 1.0                 # MIT's RaftElectionTimeout: the unit of the tester's sleeps


class Failed(AssertionError):
    """A scenario's own check failed (the message says what was expected)."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


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


def ae(term, prev, prev_term, entries=(), commit=0, leader=1):
    """AppendEntries arguments, entries given as (term, command) pairs."""
    return AppendEntriesArgs(term, leader, prev, prev_term, [LogEntry(t, cmd) for t, cmd in entries], commit)


def make_leader(node, terms, term, match):
    """Make a frozen node leader of ``term`` with a log of ``terms`` and these match indexes."""
    set_log(node, terms, term=term)
    node.state = LEADER
    node.commit_index = 0
    node.match_index = dict(match)
    node.next_index = {p: len(terms) + 1 for p in match}


def expect_adopted_term_persisted(c: Cluster, term: int) -> None:
    """Node 0, a leader that adopted ``term`` from a reply, crashes and
    restarts: it must come back in that term (persisted when adopted)."""
    c.restart(0)
    expect(c.nodes[0].current_term == term, f"the leader adopted term {term} from a reply and crashed: it came back "
                                            f"in term {c.nodes[0].current_term}: persist() after adopting it")


def rand_int(rng: random.Random) -> int:
    return rng.getrandbits(63)


def figure8_sleep(rng: random.Random) -> float:
    if rng.randrange(1000) < 100:
        return rng.randrange(int(ET * 1000) // 2) / 1000
    return rng.randrange(13) / 1000
