"""Exercise 4: the leader: its scenarios."""

from __future__ import annotations

from ...messages import AppendEntriesReply
from ...raft import ConsensusModule
from .exercise import ClassSpec, exercise, scenario
from .helpers import FOLLOWER, ae, cluster, expect, expect_adopted_term_persisted, frozen, locked, make_leader, set_log
from .mit import mit_backup, mit_fail_no_agree, mit_unreliable_agree


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
    expect_adopted_term_persisted(c, 9)


# The grade sheet: what is graded, worth how much, with which seeds (the order is the report's).
SCENARIOS = [
    scenario(4, "commit rule (Figure 8)", 15, ex4_commit_rule, public=True, seeds=(1,)),
    scenario(4, "next_index backup", 15, ex4_backup, public=True, seeds=(1,)),
    scenario(4, "handling AppendEntries replies", 15, ex4_replies, public=True, seeds=(1,)),
    scenario(4, "figure 8 (scripted)", 15, ex4_figure8_scripted, public=True, seeds=(1, 2, 3)),
    scenario(4, "no commit without a majority", 5, mit_fail_no_agree, seeds=(1, 2, 3), doc="MIT FailNoAgree."),
    scenario(4, "backup over wrong logs", 5, mit_backup, seeds=(1, 2),
             doc="MIT Backup: 2 x 50 stale entries repaired within one()'s windows."),
    scenario(4, "unreliable agreement", 10, mit_unreliable_agree, seeds=(1, 2),
             doc="Drops and reordering: match_index must come from the request that succeeded (prev_log_index + "
                 "len(entries)), not from the leader's log now."),
    scenario(4, "commit rule: majorities and runs", 10, ex4_commit_more, public=True, seeds=(1,)),
    scenario(4, "next_index after replies", 10, ex4_next_index, public=True, seeds=(1,)),
]

exercise(4, "The leader: commit index and next_index backup", "04-the-leader",
         ClassSpec("MyNode", ConsensusModule, ("send_append_entries", "advance_commit_index", "backup_index")),
         scenarios=SCENARIOS)
