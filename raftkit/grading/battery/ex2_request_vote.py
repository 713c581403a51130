"""Exercise 2: RequestVote: its scenarios."""

from __future__ import annotations

import types

from ...config import Config
from ...messages import RequestVoteArgs
from ...raft import ConsensusModule
from .exercise import ClassSpec, exercise, scenario
from .helpers import CANDIDATE, FOLLOWER, LEADER, cluster, expect, frozen, set_log
from .mit import mit_initial_election, mit_re_election, mit_rejoin


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


def ex2_split_votes(ctx, node_class, seed):
    """Equal election timeouts: everyone becomes a candidate at once, over
    and over, for 3 s. The safety monitor checks that no term ever has two
    leaders (a double vote, or a refusal counted as a vote, would give two)."""
    c = cluster(ctx, 3, seed, node_class, config=Config(election_timeout=(0.150, 0.152)))
    c.run_for(3.0)
    terms = [c.get_state(i)[0] for i in range(3)]
    expect(max(terms) >= 2 or c.leader() is not None,
           f"after 3 s there is no leader and the terms are {terms}: candidates stopped trying (seed={seed})")


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


# The grade sheet: what is graded, worth how much, with which seeds (the order is the report's).
SCENARIOS = [
    scenario(2, "term rules", 10, ex2_term_rules, public=True, seeds=(1,)),
    scenario(2, "one vote per term", 15, ex2_one_vote, public=True, seeds=(1,)),
    scenario(2, "election timer reset on a granted vote", 10, ex2_timer_reset, public=True, seeds=(1,)),
    scenario(2, "vote counting", 15, ex2_vote_counting, public=True, seeds=(1,)),
    scenario(2, "up-to-date check (5.4.1)", 15, ex2_up_to_date, public=True, seeds=(1,)),
    scenario(2, "initial election", 5, mit_initial_election, public=True, seeds=(1, 2, 3), doc="MIT InitialElection."),
    scenario(2, "re-election", 5, mit_re_election, seeds=(1, 2, 3),
             doc="MIT ReElection: a lone node never wins (votes from failed RPCs or refusals must not count)."),
    scenario(2, "split votes stay safe", 5, ex2_split_votes, seeds=(1, 2, 3)),
    scenario(2, "rejoin (election restriction)", 5, mit_rejoin, seeds=(1, 2, 3),
             doc="MIT Rejoin: the old leader, with a longer log but an older last term, must not win against a node "
                 "that has the committed entries."),
    scenario(2, "a majority of 4 and of 5", 10, ex2_majority, public=True, seeds=(1,)),
    scenario(2, "votes and terms are saved before answering", 5, ex2_saved, public=True, seeds=(1,)),
]

exercise(2, "RequestVote: the handler and the vote counting", "02-request-vote",
         ClassSpec("MyNode", ConsensusModule, ("request_vote", "send_request_vote")),
         scenarios=SCENARIOS)
