"""MIT 6.5840 scenarios, written once and shared by the exercises: the
tester's steps and numbers (tests/test_mit_scenarios.py runs them on the
reference ConsensusModule, with the tester's other scenarios)."""

from __future__ import annotations

import random

from .helpers import ET, cluster, expect, figure8_sleep, rand_int


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
