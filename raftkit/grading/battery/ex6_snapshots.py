"""Exercise 6: snapshots: its scenarios."""

from __future__ import annotations

import random
from functools import partial

from ...messages import AppendEntriesReply, InstallSnapshotArgs, InstallSnapshotReply
from ...raft import ConsensusModule
from .exercise import ClassSpec, exercise, scenario
from .helpers import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    cluster,
    expect,
    expect_adopted_term_persisted,
    frozen,
    make_leader,
    rand_int,
    set_log,
    show_log,
)

MAX_LOG_BYTES = 2000  # MIT's MAXLOGSIZE


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


def ex6_snapshot_replies(ctx, node_class, seed):
    """White-box: after a snapshot is accepted, match_index and next_index
    move up to it (never back); a reply to an older term's request is
    ignored; a reply with a newer term makes the leader step down and save
    that term; only a leader sends heartbeats."""
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
    expect_adopted_term_persisted(c, 7)


# The grade sheet: what is graded, worth how much, with which seeds (the order is the report's).
SCENARIOS = [
    scenario(6, "snapshot trims the log", 15, ex6_snapshot_trims, public=True, seeds=(1,)),
    scenario(6, "install snapshot (follower)", 15, ex6_install_white_box, public=True, seeds=(1,)),
    scenario(6, "snapshots basic", 10,
             partial(snap_common, disconnect=False, reliable=True, crash=False), public=True, seeds=(1, 2),
             doc="MIT SnapshotBasic."),
    scenario(6, "install snapshots (disconnect)", 10,
             partial(snap_common, disconnect=True, reliable=True, crash=False), seeds=(1, 2),
             doc="MIT SnapshotInstall: a follower behind the snapshot gets InstallSnapshot."),
    scenario(6, "install snapshots (crash)", 10,
             partial(snap_common, disconnect=False, reliable=True, crash=True), seeds=(1, 2),
             doc="MIT SnapshotInstallCrash."),
    scenario(6, "install snapshots (unreliable)", 10,
             partial(snap_common, disconnect=True, reliable=False, crash=False), seeds=(1, 2),
             doc="MIT SnapshotInstallUnreliable: duplicated and reordered InstallSnapshot must never move a node "
                 "backwards."),
    scenario(6, "snapshot survives restarts", 10, ex6_init, seeds=(1, 2, 3)),
    scenario(6, "install snapshot: more follower rules", 10, ex6_install_more, public=True, seeds=(1,)),
    scenario(6, "InstallSnapshot replies (leader)", 10, ex6_snapshot_replies, public=True, seeds=(1,)),
]

exercise(6, "Snapshots: compaction and InstallSnapshot", "06-snapshots",
         ClassSpec("MyNode", ConsensusModule, ("snapshot", "install_snapshot", "send_install_snapshot",
                                               "send_heartbeats")),
         scenarios=SCENARIOS)
