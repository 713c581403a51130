"""The scenarios of eliben/raft parts 1-3, ported to the raftkit Cluster API.

Source: github.com/eliben/raft, ``part1/raft_test.go``, ``part2/raft_test.go``,
``part3/raft_test.go`` and ``part3/raft/{raft_test,election_safety_test,
bug_repro_test}.go``. Each test keeps the Go test's name (snake_case), its
steps and its sleeps; the harness maps as follows:

=====================================  =====================================
eliben harness                         raftkit
=====================================  =====================================
``CheckSingleLeader()``                ``c.check_one_leader()`` (+ term)
``CheckNoLeader()``                    ``c.check_no_leader()``
``DisconnectPeer`` / ``ReconnectPeer`` ``c.disconnect(i)`` / ``c.connect(i)``
``CrashPeer`` / ``RestartPeer``        ``c.crash(i)`` / ``c.restart(i)``
``SubmitToServer(i, cmd)``             ``c.submit(cmd, node=i)``
``CheckCommitted(cmd)``                ``check_committed`` below, over
                                       ``c.applied(i)`` and ``c.n_committed``
``sleepMs(x)``                         ``c.run_for(x / 1000)``
``leaktest.CheckTimeout``              the ``no_leaked_threads`` fixture
=====================================  =====================================

Differences that matter when reading a failure:

* ``check_one_leader`` polls like MIT's tester: it always lets ~0.5 s of
  cluster time pass before its first look, where eliben's looks at once.
  Every scenario below therefore gives the cluster *more* time to settle
  than the Go original, never less.
* eliben's ``CrashPeer`` also disconnects the server (its ``connected`` flag
  means "alive and linked"); here liveness and links are independent, so
  "connected" in ``check_committed`` means ``is_alive(i) and is_connected(i)``.
* Everything runs on the virtual clock: a failure is replayed exactly by
  re-running the same seed, which every assertion message names.
"""

from __future__ import annotations

import pytest

import raftkit
from raftkit import CMState, RequestVoteArgs
from tests.eliben import sleep_ms

SEEDS = [1, 2, 3]
pytestmark = pytest.mark.usefixtures("no_leaked_threads")


# ---------------------------------------------------------------- harness
def on_net(c: raftkit.Cluster) -> list[int]:
    """The servers eliben's harness calls "connected": alive and linked."""
    return [i for i in range(c.n) if c.is_alive(i) and c.is_connected(i)]


def single_leader(c: raftkit.Cluster) -> tuple[int, int]:
    """eliben's ``CheckSingleLeader``: (leader id, its term)."""
    leader = c.check_one_leader()
    term, is_leader = c.get_state(leader)
    assert is_leader, f"seed={c.seed}: check_one_leader returned {leader}, which is not leader"
    return leader, term


def commands(c: raftkit.Cluster, i: int) -> list:
    """The command messages node i's current incarnation delivered, in order."""
    return [m for m in c.applied(i) if m.command_valid]


def check_committed(c: raftkit.Cluster, cmd) -> tuple[int, int]:
    """eliben's ``CheckCommitted``: every connected server applied the same
    sequence of commands, ``cmd`` is in it at the same index everywhere.
    Returns (number of connected servers, index). Cross-checked against the
    MIT-style ``c.n_committed``."""
    nodes = on_net(c)
    streams = {i: commands(c, i) for i in nodes}
    lengths = {i: len(s) for i, s in streams.items()}
    assert len(set(lengths.values())) <= 1, (
        f"seed={c.seed}: connected servers applied different numbers of commands: {lengths} "
        f"(applied: { {i: [m.command for m in s] for i, s in streams.items()} })")
    length = next(iter(lengths.values()), 0)
    for k in range(length):
        at_k = {i: (streams[i][k].command, streams[i][k].command_index) for i in nodes}
        assert len(set(at_k.values())) == 1, (
            f"seed={c.seed}: servers disagree on the {k + 1}-th applied command: {at_k}")
        command, index = at_k[nodes[0]]
        if command == cmd:
            count, committed = c.n_committed(index)
            assert committed == cmd and count >= len(nodes), (
                f"seed={c.seed}: n_committed({index}) = {(count, committed)!r}, "
                f"but {len(nodes)} connected servers applied {cmd!r} there")
            return len(nodes), index
    pytest.fail(f"seed={c.seed}: command {cmd!r} not found in the applied commands of connected servers "
                f"{ {i: [m.command for m in s] for i, s in streams.items()} }")


def check_committed_n(c: raftkit.Cluster, cmd, n: int) -> int:
    """eliben's ``CheckCommittedN``: ``cmd`` committed by exactly n connected
    servers. Returns its index."""
    nc, index = check_committed(c, cmd)
    assert nc == n, f"seed={c.seed}: {cmd!r} committed by {nc} connected servers, want {n}"
    return index


def check_not_committed(c: raftkit.Cluster, cmd) -> None:
    """eliben's ``CheckNotCommitted``: no connected server applied ``cmd``."""
    for i in on_net(c):
        got = [m.command_index for m in commands(c, i) if m.command == cmd]
        assert not got, f"seed={c.seed}: server {i} applied {cmd!r} at index {got}, expected none"


def submit(c: raftkit.Cluster, node: int, cmd, *, expect_leader: bool | None = True):
    """eliben's ``SubmitToServer``; by default the node must accept it."""
    index, term, is_leader = c.submit(cmd, node=node)
    if expect_leader is not None:
        assert is_leader == expect_leader, (
            f"seed={c.seed}: submit({cmd!r}) to {node} returned is_leader={is_leader}, want {expect_leader}")
    return index, term, is_leader


def log_commands(c: raftkit.Cluster, i: int) -> list:
    node = c.nodes[i]
    with node.mu:
        return [e.command for e in node.log]


# ============================================================ elections (part 1)
@pytest.mark.parametrize("seed", SEEDS)
def test_election_basic(seed):
    """TestElectionBasic: a fresh 3-node cluster elects exactly one leader,
    and every server agrees on its term."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, term = single_leader(c)
        assert term >= 1, f"seed={seed}: leader {leader} has term {term}; a leader is elected in term >= 1"
        assert c.check_terms() == term, f"seed={seed}: servers disagree with the leader's term {term}"


@pytest.mark.parametrize("seed", SEEDS)
def test_election_leader_disconnect(seed):
    """TestElectionLeaderDisconnect: when the leader is cut off, the other
    two (a majority) elect a new leader in a higher term."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, orig_term = single_leader(c)
        c.disconnect(orig)
        sleep_ms(c, 350)
        new, new_term = single_leader(c)
        assert new != orig, f"seed={seed}: the disconnected leader {orig} is still the only leader"
        assert new_term > orig_term, f"seed={seed}: want new term > {orig_term}, got {new_term}"


@pytest.mark.parametrize("seed", SEEDS)
def test_election_leader_and_another_disconnect(seed):
    """TestElectionLeaderAndAnotherDisconnect: with two of three servers
    gone no leader can be elected (no quorum); bringing one back restores
    a quorum and a leader."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, _ = single_leader(c)
        other = (orig + 1) % 3
        c.disconnect(orig)
        c.disconnect(other)
        sleep_ms(c, 450)
        c.check_no_leader()
        c.connect(other)
        single_leader(c)


@pytest.mark.parametrize("seed", SEEDS)
def test_disconnect_all_then_restore(seed):
    """TestDisconnectAllThenRestore: fully disconnected servers never elect
    anyone (each candidate only has its own vote); reconnecting all of
    them yields a leader."""
    with raftkit.Cluster(3, seed=seed) as c:
        sleep_ms(c, 100)
        for i in range(3):
            c.disconnect(i)
        sleep_ms(c, 450)
        c.check_no_leader()
        for i in range(3):
            c.connect(i)
        single_leader(c)


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_election_leader_disconnect_then_reconnect(seed, n):
    """TestElectionLeaderDisconnectThenReconnect (n=3) and ...Reconnect5
    (n=5): a deposed leader that comes back has a stale term; it must step
    down without disturbing the new leader, which keeps its term."""
    with raftkit.Cluster(n, seed=seed) as c:
        orig, _ = single_leader(c)
        c.disconnect(orig)
        sleep_ms(c, 350 if n == 3 else 150)
        new, new_term = single_leader(c)
        c.connect(orig)
        sleep_ms(c, 150)
        again, again_term = single_leader(c)
        assert again == new, f"seed={seed}: leader after reconnect is {again}; want {new}"
        assert again_term == new_term, f"seed={seed}: term after reconnect is {again_term}; want {new_term}"
        assert c.get_state(orig) == (new_term, False), (
            f"seed={seed}: returning server {orig} has state {c.get_state(orig)}; want ({new_term}, False)")


@pytest.mark.parametrize("seed", SEEDS)
def test_election_follower_comes_back(seed):
    """TestElectionFollowerComesBack: a follower cut off for 650 ms keeps
    timing out and bumping its term; when it returns, its higher term
    forces a new election, so the final term exceeds the original."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, orig_term = single_leader(c)
        other = (orig + 1) % 3
        c.disconnect(other)
        sleep_ms(c, 650)
        c.connect(other)
        sleep_ms(c, 150)
        _, new_term = single_leader(c)
        assert new_term > orig_term, f"seed={seed}: new term {new_term} should exceed the original {orig_term}"


@pytest.mark.parametrize("seed", SEEDS)
def test_election_disconnect_loop(seed):
    """TestElectionDisconnectLoop: five times, cut off the leader and one
    more server (no quorum, so no leader among the connected), then bring
    both back: a single leader must re-emerge every time."""
    with raftkit.Cluster(3, seed=seed) as c:
        for _ in range(5):
            leader, _ = single_leader(c)
            other = (leader + 1) % 3
            c.disconnect(leader)
            c.disconnect(other)
            sleep_ms(c, 310)
            c.check_no_leader()
            c.connect(other)
            c.connect(leader)
            sleep_ms(c, 150)
        single_leader(c)


# ============================================================ commits (parts 2-3)
@pytest.mark.parametrize("seed", SEEDS)
def test_commit_one_command(seed):
    """TestCommitOneCommand: a command submitted to the leader is applied
    by all three servers at index 1."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, term = single_leader(c)
        index, sub_term, _ = submit(c, leader, 42)
        assert (index, sub_term) == (1, term), (
            f"seed={seed}: first submit returned index={index} term={sub_term}; want 1, {term}")
        sleep_ms(c, 250)
        assert check_committed_n(c, 42, 3) == 1, f"seed={seed}: 42 should be committed at index 1"


@pytest.mark.parametrize("seed", SEEDS)
def test_commit_after_call_drops(seed):
    """TestCommitAfterCallDrops: the leader's AppendEntries for a new
    command are lost (eliben: PeerDropCallsAfterN; here: every request is
    dropped for 30 ms). Once the network recovers, the leader's retries
    (heartbeats) must still commit the command everywhere."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, _ = single_leader(c)
        c.set_network(request_drop=1.0)
        submit(c, leader, 99)
        sleep_ms(c, 30)
        c.set_network(request_drop=0.0)
        sleep_ms(c, 60)
        # The leader commits on the first reply after recovery, but followers
        # learn the new commit index only from the next heartbeat (raftkit
        # does not send an extra round per commit, eliben's code does): allow
        # one more heartbeat interval than the Go test before checking.
        sleep_ms(c, 60)
        check_committed_n(c, 99, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_submit_non_leader_fails(seed):
    """TestSubmitNonLeaderFails: a follower refuses a command (is_leader is
    False), and nothing gets committed because of it."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, _ = single_leader(c)
        follower = (leader + 1) % 3
        index, _, is_leader = submit(c, follower, 42, expect_leader=False)
        assert not is_leader, f"seed={seed}: follower {follower} accepted a command"
        sleep_ms(c, 10)
        assert log_commands(c, follower) == [] and log_commands(c, leader) == [], (
            f"seed={seed}: a refused command must not reach any log")
        check_not_committed(c, 42)


@pytest.mark.parametrize("seed", SEEDS)
def test_commit_multiple_commands(seed):
    """TestCommitMultipleCommands (part 3) and TestTestCommitMultipleCommands
    (part 2): commands submitted one after another to one leader commit in
    submission order on all servers, all in the leader's term."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, term = single_leader(c)
        terms = []
        for v in (42, 55, 81):
            _, t, _ = submit(c, leader, v)
            terms.append(t)
            sleep_ms(c, 100)
        sleep_ms(c, 250)
        nc, i1 = check_committed(c, 42)
        _, i2 = check_committed(c, 55)
        _, i3 = check_committed(c, 81)
        assert nc == 3, f"seed={seed}: want 42 committed on 3 servers, got {nc}"
        assert i1 < i2 < i3, f"seed={seed}: want increasing indexes, got {i1}, {i2}, {i3}"
        assert terms == [term] * 3, f"seed={seed}: want all three in term {term}, got {terms}"


@pytest.mark.parametrize("seed", SEEDS)
def test_commit_with_disconnection_and_recover(seed):
    """TestCommitWithDisconnectionAndRecover: with one follower cut off the
    other two still form a majority and commit; the follower catches up
    with the missed command once it is back."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, _ = single_leader(c)
        submit(c, leader, 5)
        submit(c, leader, 6)
        sleep_ms(c, 250)
        check_committed_n(c, 6, 3)

        peer = (leader + 1) % 3
        c.disconnect(peer)
        sleep_ms(c, 250)
        submit(c, leader, 7)
        sleep_ms(c, 250)
        check_committed_n(c, 7, 2)

        c.connect(peer)
        sleep_ms(c, 250)
        single_leader(c)
        sleep_ms(c, 150)
        check_committed_n(c, 7, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_no_commit_with_no_quorum(seed):
    """TestNoCommitWithNoQuorum: a leader alone cannot commit (8 stays
    uncommitted); after the followers return the term has moved on, so 8
    is still not committed (a leader never commits an old-term entry by
    counting replicas), but new commands commit on all three."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, orig_term = single_leader(c)
        submit(c, orig, 5)
        submit(c, orig, 6)
        sleep_ms(c, 250)
        check_committed_n(c, 6, 3)

        p1, p2 = (orig + 1) % 3, (orig + 2) % 3
        c.disconnect(p1)
        c.disconnect(p2)
        sleep_ms(c, 250)
        submit(c, orig, 8)
        sleep_ms(c, 250)
        check_not_committed(c, 8)

        c.connect(p1)
        c.connect(p2)
        sleep_ms(c, 600)
        check_not_committed(c, 8)

        new, again_term = single_leader(c)
        assert again_term != orig_term, f"seed={seed}: the term should have changed from {orig_term}"
        check_not_committed(c, 8)
        for v in (9, 10, 11):
            submit(c, new, v)
        sleep_ms(c, 350)
        for v in (9, 10, 11):
            check_committed_n(c, v, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_disconnect_leader_briefly(seed):
    """TestDisconnectLeaderBriefly: a 90 ms outage (shorter than any
    follower's election timeout) changes nothing: the same leader keeps
    committing."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, orig_term = single_leader(c)
        submit(c, orig, 5)
        submit(c, orig, 6)
        sleep_ms(c, 250)
        check_committed_n(c, 6, 3)

        c.disconnect(orig)
        sleep_ms(c, 90)
        c.connect(orig)
        sleep_ms(c, 200)
        submit(c, orig, 7)
        sleep_ms(c, 250)
        check_committed_n(c, 7, 3)
        assert c.get_state(orig) == (orig_term, True), (
            f"seed={seed}: leader {orig} should have kept term {orig_term}, got {c.get_state(orig)}")


@pytest.mark.parametrize("seed", SEEDS)
def test_commits_with_leader_disconnects(seed):
    """TestCommitsWithLeaderDisconnects (5 nodes): a command given to a
    cut-off leader (7) never commits; the new leader's command (8) commits
    on the four connected servers; the old leader, whose log is stale,
    cannot win again when it returns, and its 7 is replaced."""
    with raftkit.Cluster(5, seed=seed) as c:
        orig, _ = single_leader(c)
        submit(c, orig, 5)
        submit(c, orig, 6)
        sleep_ms(c, 250)
        check_committed_n(c, 6, 5)

        c.disconnect(orig)
        sleep_ms(c, 10)
        submit(c, orig, 7)  # it still believes it leads
        sleep_ms(c, 250)
        check_not_committed(c, 7)

        new, _ = single_leader(c)
        submit(c, new, 8)
        sleep_ms(c, 250)
        check_committed_n(c, 8, 4)

        c.connect(orig)
        sleep_ms(c, 600)
        final, _ = single_leader(c)
        assert final != orig, f"seed={seed}: the old leader {orig} (stale log) won again"
        submit(c, final, 9)
        sleep_ms(c, 250)
        check_committed_n(c, 9, 5)
        check_committed_n(c, 8, 5)
        check_not_committed(c, 7)
        assert 7 not in log_commands(c, orig), f"seed={seed}: server {orig} still holds uncommitted 7"


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_follower(seed):
    """TestCrashFollower: crashing a follower does not disturb the others;
    the command stays committed on the two live servers."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, _ = single_leader(c)
        submit(c, leader, 5)
        sleep_ms(c, 350)
        check_committed_n(c, 5, 3)
        c.crash((leader + 1) % 3)
        sleep_ms(c, 350)
        check_committed_n(c, 5, 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_then_restart_follower(seed):
    """TestCrashThenRestartFollower: a restarted follower reloads its
    persisted log and is brought up to date; its new incarnation re-applies
    every command from index 1."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, _ = single_leader(c)
        vals = [5, 6, 7]
        for v in vals:
            submit(c, leader, v)
        sleep_ms(c, 350)
        for v in vals:
            check_committed_n(c, v, 3)

        f = (leader + 1) % 3
        c.crash(f)
        sleep_ms(c, 350)
        for v in vals:
            check_committed_n(c, v, 2)

        c.restart(f)
        sleep_ms(c, 20)  # eliben's RestartPeer sleeps 20 ms
        assert log_commands(c, f) == vals, (
            f"seed={seed}: restarted server {f} should reload its log {vals}, has {log_commands(c, f)}")
        sleep_ms(c, 650)
        for v in vals:
            check_committed_n(c, v, 3)
        assert [m.command_index for m in commands(c, f)] == [1, 2, 3], (
            f"seed={seed}: the new incarnation must apply indexes 1..3 in order, got {commands(c, f)}")


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_then_restart_leader(seed):
    """TestCrashThenRestartLeader: the two followers keep the committed
    commands after the leader crashes; the restarted old leader rejoins as a
    follower and applies them again."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, _ = single_leader(c)
        vals = [5, 6, 7]
        for v in vals:
            submit(c, orig, v)
        sleep_ms(c, 350)
        for v in vals:
            check_committed_n(c, v, 3)

        c.crash(orig)
        sleep_ms(c, 350)
        for v in vals:
            check_committed_n(c, v, 2)

        c.restart(orig)
        sleep_ms(c, 20)
        sleep_ms(c, 550)
        for v in vals:
            check_committed_n(c, v, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_then_restart_all(seed):
    """TestCrashThenRestartAll: after every server crashes and restarts,
    the persisted logs are intact; a new leader commits a new command, and
    with it every earlier one, on all three."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, _ = single_leader(c)
        for v in (5, 6, 7):
            submit(c, orig, v)
        sleep_ms(c, 350)
        for v in (5, 6, 7):
            check_committed_n(c, v, 3)

        for i in range(3):
            c.crash((orig + i) % 3)
        sleep_ms(c, 350)
        for i in range(3):
            c.restart((orig + i) % 3)
            sleep_ms(c, 20)
        sleep_ms(c, 150)
        new, _ = single_leader(c)
        submit(c, new, 8)
        sleep_ms(c, 250)
        for v in (5, 6, 7, 8):
            check_committed_n(c, v, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_replace_multiple_log_entries(seed):
    """TestReplaceMultipleLogEntries: a cut-off leader piles up four
    uncommitted entries (21-24); the rest of the cluster commits 8-10 in a
    later term. After the new leader is crashed and restarted (resetting
    next_index) and the old leader returns, the final leader must replace
    all four stale entries, so 21 is never committed and 10, 11 are."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, _ = single_leader(c)
        submit(c, orig, 5)
        submit(c, orig, 6)
        sleep_ms(c, 250)
        check_committed_n(c, 6, 3)

        c.disconnect(orig)
        sleep_ms(c, 10)
        for v in (21, 22, 23, 24):
            submit(c, orig, v)
            sleep_ms(c, 5)

        new, _ = single_leader(c)
        for v in (8, 9, 10):
            submit(c, new, v)
            sleep_ms(c, 5)
        sleep_ms(c, 250)
        check_not_committed(c, 21)
        check_committed_n(c, 10, 2)

        c.crash(new)
        sleep_ms(c, 60)
        c.restart(new)
        sleep_ms(c, 20)
        sleep_ms(c, 100)
        final, _ = single_leader(c)
        c.connect(orig)
        sleep_ms(c, 400)

        submit(c, final, 11)
        sleep_ms(c, 250)
        check_not_committed(c, 21)
        check_committed_n(c, 11, 3)
        check_committed_n(c, 10, 3)
        stale = [v for v in (21, 22, 23, 24) if v in log_commands(c, orig)]
        assert not stale, f"seed={seed}: server {orig} still holds stale entries {stale}"


def _replicated_to_followers(leader: int, cmd):
    def pred(c):
        return all(cmd in log_commands(c, i) for i in range(c.n) if i != leader)
    return pred


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_after_submit(seed):
    """TestCrashAfterSubmit: the leader crashes right after its
    AppendEntries for 5 reached the followers, before it could tell them 5
    is committed. A new leader must not commit 5 on its own (§5.4.2: only
    current-term entries are committed by counting replicas), not even
    after the old leader restarts; 5 commits together with the next new
    command, 6, because it is in everyone's log.

    eliben waits 1 ms of wall time and relies on the AppendEntries having
    arrived; here we run exactly until both followers hold 5 (a few ms of
    cluster time), which is the situation the Go test means."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, _ = single_leader(c)
        index5, _, _ = submit(c, orig, 5)
        assert c.run_until(_replicated_to_followers(orig, 5), timeout=0.05), (
            f"seed={seed}: the followers did not receive 5 within 50 ms")
        c.crash(orig)

        sleep_ms(c, 10)
        single_leader(c)
        sleep_ms(c, 300)
        check_not_committed(c, 5)

        c.restart(orig)
        sleep_ms(c, 20)
        sleep_ms(c, 150)
        new, _ = single_leader(c)
        check_not_committed(c, 5)

        submit(c, new, 6)
        sleep_ms(c, 100)
        assert check_committed_n(c, 5, 3) == index5, f"seed={seed}: 5 must keep its index {index5}"
        check_committed_n(c, 6, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_disconnect_after_submit(seed):
    """TestDisconnectAfterSubmit: as TestCrashAfterSubmit, but the leader is
    disconnected instead of crashed. While it is away 5 is not committed by
    the others; after it returns 5 is still not committed anywhere until
    the new leader commits a command of its own term, 6."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, _ = single_leader(c)
        submit(c, orig, 5)
        assert c.run_until(_replicated_to_followers(orig, 5), timeout=0.05), (
            f"seed={seed}: the followers did not receive 5 within 50 ms")
        orig_committed = c.nodes[orig].commit_index  # it may have heard one reply already
        c.disconnect(orig)

        sleep_ms(c, 10)
        single_leader(c)
        sleep_ms(c, 300)
        check_not_committed(c, 5)

        c.connect(orig)
        sleep_ms(c, 150)
        new, _ = single_leader(c)
        if orig_committed == 0:
            check_not_committed(c, 5)
        else:  # the old leader committed 5 before it left: only it may have applied it
            for i in range(3):
                if i != orig:
                    assert 5 not in [m.command for m in commands(c, i)], (
                        f"seed={seed}: server {i} applied 5 before any current-term entry committed")

        submit(c, new, 6)
        sleep_ms(c, 100)
        check_committed_n(c, 5, 3)
        check_committed_n(c, 6, 3)


# ================================================ persistence (part 3 bug repros)
@pytest.mark.parametrize("seed", SEEDS)
def test_start_election_persists_term(seed):
    """TestBug_StartElectionMissingPersist: an isolated follower runs
    election after election, each bumping its term and voting for itself.
    Those must be persisted (Figure 2: currentTerm, votedFor on stable
    storage), so a crash + restart brings back the same term and vote;
    otherwise it could vote twice in one term."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, leader_term = single_leader(c)
        victim = (leader + 1) % 3
        c.disconnect(victim)
        sleep_ms(c, 1200)
        node = c.nodes[victim]
        with node.mu:
            term, voted_for = node.current_term, node.voted_for
        assert term > leader_term, f"seed={seed}: isolated server {victim} never started an election"
        c.crash(victim)
        c.restart(victim)
        node = c.nodes[victim]
        with node.mu:
            restored = node.current_term, node.voted_for
        assert restored == (term, voted_for), (
            f"seed={seed}: server {victim} had (term, voted_for)={(term, voted_for)} in memory, "
            f"but restarted with {restored}: start_election did not persist")


@pytest.mark.parametrize("seed", SEEDS)
def test_become_follower_persists_term(seed):
    """TestBug_BecomeFollowerMissingPersist: an old leader that comes back
    steps down on seeing a higher term in a reply. That term must be
    persisted at once: crashed and restarted right after, it still knows
    it. The new leader is isolated (eliben: PeerDropCallsAfterN(new, 0)) so
    the old leader learns the term only from the third server's reply."""
    with raftkit.Cluster(3, seed=seed) as c:
        orig, orig_term = single_leader(c)
        c.disconnect(orig)
        sleep_ms(c, 350)
        new, new_term = single_leader(c)
        assert new_term > orig_term, f"seed={seed}: want new term > {orig_term}, got {new_term}"

        third = 3 - orig - new
        c.partition([orig, third], [new])
        c.connect(orig)
        sleep_ms(c, 120)
        term, is_leader = c.get_state(orig)
        assert not is_leader, f"seed={seed}: server {orig} still thinks it leads after hearing term {new_term}"
        # Usually term == new_term; the third server, no longer hearing the
        # new leader, may already have timed out and moved one term further.
        assert term >= new_term, f"seed={seed}: server {orig} has term {term} after stepping down; want >= {new_term}"

        c.crash(orig)
        c.restart(orig)
        restarted_term, _ = c.get_state(orig)
        assert restarted_term == term, (
            f"seed={seed}: server {orig} had term {term} when it crashed but restarted with {restarted_term}: "
            f"the term learned on stepping down was not persisted")


# ============================================ election safety (part 3 extras)
def _follower_that_voted(c: raftkit.Cluster, leader: int, term: int) -> int:
    for i in range(c.n):
        if i == leader:
            continue
        node = c.nodes[i]
        with node.mu:
            if node.state == CMState.FOLLOWER and node.voted_for == leader and node.current_term == term:
                return i
    pytest.fail(f"seed={c.seed}: no follower voted for leader {leader} in term {term}")


@pytest.mark.parametrize("seed", SEEDS)
def test_become_follower_same_term_preserves_voted_for(seed):
    """TestBecomeFollowerSameTermPreservesVotedFor: become_follower in the
    same term must keep voted_for (only a new term frees the vote),
    otherwise a node could vote twice in one term."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, term = single_leader(c)
        f = _follower_that_voted(c, leader, term)
        node = c.nodes[f]
        with node.mu:
            node.become_follower(term)
            after = node.current_term, node.voted_for
        assert after == (term, leader), (
            f"seed={seed}: become_follower({term}) changed (term, voted_for) from {(term, leader)} to {after}")
        sleep_ms(c, 200)
        assert single_leader(c) == (leader, term), f"seed={seed}: the cluster should be undisturbed"


@pytest.mark.parametrize("seed", SEEDS)
def test_become_follower_higher_term_resets_voted_for(seed):
    """TestBecomeFollowerHigherTermResetsVotedFor: become_follower with a
    higher term adopts it and frees the vote (voted_for becomes None)."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, term = single_leader(c)
        f = _follower_that_voted(c, leader, term)
        node = c.nodes[f]
        with node.mu:
            node.become_follower(term + 1)
            after = node.current_term, node.voted_for, node.state
        assert after == (term + 1, None, CMState.FOLLOWER), (
            f"seed={seed}: become_follower({term + 1}) left (term, voted_for, state) = {after}")


@pytest.mark.parametrize("seed", SEEDS)
def test_stale_vote_reply_ignored(seed):
    """TestStaleVoteReplyIgnored (5 nodes): two leaders in a row are cut
    off, then both return with stale terms, and replies from long-gone
    elections float around. At most one leader per term (the safety
    monitor checks this after every event) and a single leader at the end."""
    with raftkit.Cluster(5, seed=seed) as c:
        orig, orig_term = single_leader(c)
        c.disconnect(orig)
        sleep_ms(c, 450)
        new, new_term = single_leader(c)
        assert new_term > orig_term, f"seed={seed}: want new term > {orig_term}, got {new_term}"
        c.disconnect(new)
        sleep_ms(c, 450)
        c.connect(orig)
        c.connect(new)
        sleep_ms(c, 450)
        single_leader(c)


@pytest.mark.parametrize("seed", SEEDS)
def test_same_term_double_vote_prevented(seed):
    """TestSameTermDoubleVotePrevented: a follower that voted for the leader
    in term T refuses a RequestVote from another candidate in the same term.
    Unlike the Go test, the candidate's log is made up-to-date, so the only
    reason left to refuse is the vote already cast."""
    with raftkit.Cluster(3, seed=seed) as c:
        leader, term = single_leader(c)
        f = _follower_that_voted(c, leader, term)
        other = 3 - leader - f
        args = RequestVoteArgs(term=term, candidate_id=other, last_log_index=100, last_log_term=term)
        reply = c.nodes[f].request_vote(args)
        assert reply.term == term and not reply.vote_granted, (
            f"seed={seed}: follower {f} answered {reply} to {other} in term {term}, "
            f"but it already voted for {leader}")
        node = c.nodes[f]
        with node.mu:
            assert node.voted_for == leader, f"seed={seed}: voted_for changed to {node.voted_for}"
        # The vote it already gave is granted again (idempotent for the same candidate).
        again = c.nodes[f].request_vote(RequestVoteArgs(term, leader, 100, term))
        assert again.vote_granted, f"seed={seed}: a repeated request from {leader} should be granted, got {again}"


@pytest.mark.parametrize("seed", SEEDS)
def test_election_safety_stress(seed):
    """TestElectionSafetyStress (5 nodes): eight rounds of cutting off the
    leader, electing another, bringing the old one back. Exactly one leader
    among the connected servers each time, and never two per term."""
    with raftkit.Cluster(5, seed=seed) as c:
        for cycle in range(8):
            leader, _ = single_leader(c)
            c.disconnect(leader)
            sleep_ms(c, 350)
            new, _ = single_leader(c)
            assert new != leader, f"seed={seed}, cycle {cycle}: disconnected {leader} is still the leader"
            c.connect(leader)
            sleep_ms(c, 150)
        sleep_ms(c, 300)
        single_leader(c)
        c.check_terms()
