"""Exercise 1: fix the seed (the election timer): its scenarios."""

from __future__ import annotations

from ...raft import ConsensusModule
from .exercise import ClassSpec, exercise, scenario
from .helpers import CANDIDATE, ET, cluster, expect, frozen, locked, set_log
from .mit import mit_initial_election, mit_many_elections, mit_re_election


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


# The grade sheet: what is graded, worth how much, with which seeds (the order is the report's).
SCENARIOS = [
    scenario(1, "initial election", 15, mit_initial_election, public=True, seeds=(1, 2, 3),
             doc="MIT InitialElection: a leader within 5 s, terms agree, no needless elections."),
    scenario(1, "re-election", 20, mit_re_election, public=True, seeds=(1, 2, 3),
             doc="MIT ReElection: elections after the leader disconnects, none without a quorum."),
    scenario(1, "split vote is retried", 10, ex1_split_vote, public=True, seeds=(1, 2, 3)),
    scenario(1, "a leader stays leader", 20, ex1_stable_leader, seeds=(1, 2, 3)),
    scenario(1, "many elections", 10, mit_many_elections, seeds=(1, 2, 3),
             doc="MIT ManyElections: 7 nodes, random disconnections, always one leader."),
    scenario(1, "becoming a candidate", 10, ex1_becoming_candidate, public=True, seeds=(1,)),
    scenario(1, "one election timer per node", 10, ex1_one_timer, seeds=(1, 2, 3)),
    scenario(1, "RPC counts", 5, ex1_rpc_counts, seeds=(1, 2, 3)),
]

exercise(1, "Fix the seed: the election timer", "01-fix-the-seed",
         ClassSpec("MyNode", ConsensusModule, ("run_election_timer", "start_election")),
         scenarios=SCENARIOS)
