"""Exercise 5: persistence: its scenarios."""

from __future__ import annotations

from ...messages import RequestVoteArgs
from ...raft import ConsensusModule
from .exercise import ClassSpec, exercise, scenario
from .helpers import cluster, expect, frozen
from .mit import mit_figure8, mit_persist1, mit_persist2, mit_persist3


def node_state(node):
    return node.current_term, node.voted_for, [(e.term, e.command) for e in node.log]


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


# The grade sheet: what is graded, worth how much, with which seeds (the order is the report's).
SCENARIOS = [
    scenario(5, "state survives a restart", 20, ex5_state_survives, public=True, seeds=(1, 2)),
    scenario(5, "a vote survives a restart", 20, ex5_vote_survives, public=True, seeds=(1,)),
    scenario(5, "basic persistence", 15, mit_persist1, seeds=(1, 2, 3), doc="MIT Persist1."),
    scenario(5, "more persistence", 10, mit_persist2, seeds=(1, 2), doc="MIT Persist2."),
    scenario(5, "partitioned leader and crashes", 15, mit_persist3, seeds=(1, 2, 3), doc="MIT Persist3."),
    scenario(5, "figure 8 with crashes", 10, mit_figure8, seeds=(1, 2),
             doc="MIT Figure8: 1000 iterations; leaders crash right after accepting."),
    scenario(5, "persistence goes through Storage", 10, ex5_through_storage, public=True, seeds=(1,)),
]

exercise(5, "Persistence: what to save, and restore on restart", "05-persistence",
         ClassSpec("MyNode", ConsensusModule, ("persist", "restore")),
         scenarios=SCENARIOS)
