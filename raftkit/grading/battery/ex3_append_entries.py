"""Exercise 3: AppendEntries, the follower side: its scenarios."""

from __future__ import annotations

from ...raft import ConsensusModule
from .exercise import ClassSpec, exercise, scenario
from .helpers import CANDIDATE, FOLLOWER, ae, expect, frozen, set_log, show_log
from .mit import mit_basic_agree, mit_fail_agree, mit_rejoin, mit_unreliable_agree


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


# The grade sheet: what is graded, worth how much, with which seeds (the order is the report's).
SCENARIOS = [
    scenario(3, "term rules and the timer", 10, ex3_term_rules, public=True, seeds=(1,)),
    scenario(3, "consistency check", 15, ex3_consistency, public=True, seeds=(1,)),
    scenario(3, "truncate only on conflict", 20, ex3_truncate, public=True, seeds=(1,)),
    scenario(3, "commit index rule", 15, ex3_commit_rule, public=True, seeds=(1,)),
    scenario(3, "basic agreement", 5, mit_basic_agree, public=True, seeds=(1, 2, 3), doc="MIT BasicAgree."),
    scenario(3, "agreement after reconnection", 5, mit_fail_agree, seeds=(1, 2, 3),
             doc="MIT FailAgree: a follower that missed entries is repaired."),
    scenario(3, "rejoin", 5, mit_rejoin, seeds=(1, 2, 3),
             doc="MIT Rejoin: conflicting entries of an old leader are overwritten."),
    scenario(3, "unreliable agreement", 10, mit_unreliable_agree, seeds=(1, 2),
             doc="MIT UnreliableAgree: drops and reordering; a follower that truncates on stale requests loses "
                 "committed entries."),
    scenario(3, "conflict hint: the whole term", 5, ex3_conflict_term_start, public=True, seeds=(1,)),
    scenario(3, "term and entries are saved before answering", 5, ex3_saved, public=True, seeds=(1,)),
    scenario(3, "commit index never goes back", 5, ex3_commit_back, public=True, seeds=(1,)),
]

exercise(3, "AppendEntries: the follower side", "03-append-entries",
         ClassSpec("MyNode", ConsensusModule, ("append_entries", "conflict_hint")),
         scenarios=SCENARIOS)
