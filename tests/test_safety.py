"""The safety monitor catches deliberately broken nodes, and stays quiet on correct runs."""

import random

import pytest

import raftkit
from raftkit import Config, ConsensusModule, LogEntry, SafetyViolation
from tests.broken import CountingCommitter, DoubleVoter, Overwriter, Truncator


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_double_voting_gives_two_leaders_in_a_term(seed):
    """Equal election timeouts make every node a candidate at once; a node
    that votes twice in a term then elects two leaders: Election Safety."""
    config = Config(election_timeout=(0.150, 0.150))
    with raftkit.Cluster(3, seed=seed, config=config, node_class=DoubleVoter) as c:
        with pytest.raises(SafetyViolation) as err:
            c.run_for(5)
        assert err.value.invariant == "Election Safety", f"seed={seed}: {err.value}"
        assert err.value.event is not None and err.value.trace[-1] is err.value.event


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_correct_node_with_equal_timeouts_never_has_two_leaders(seed):
    """The same split-vote storm with correct nodes: never two leaders per
    term, and candidates keep retrying (the Go seed never retried)."""
    config = Config(election_timeout=(0.150, 0.150))
    with raftkit.Cluster(3, seed=seed, config=config) as c:
        c.run_for(5)
        assert max(c.get_state(i)[0] for i in range(3)) >= 10, f"seed={seed}: candidates stopped retrying"


def figure8(node_class, seed):
    """The scenario of Figure 8 of the Raft paper, scripted with crashes.

    (a) S1 leads term T and stores X at index 1 on itself and S2 only.
    (b) S1, S2 crash; S5 is elected by S3, S4, S5 and stores Y at index 1 on itself only.
    (c) S5 crashes; S1, S2 restart; S1 or S2 leads a new term and copies X to S3:
        X is now on a majority. Counting replicas would commit it here.
    (d) S1, S2 crash; S5 restarts and is elected by S3, S4 (Y's term beats X's): it
        overwrites X. If X was committed, a committed entry is lost.
    """
    c = raftkit.Cluster(5, seed=seed, node_class=node_class)
    s1 = c.check_one_leader()
    s2, s3, s4, s5 = [(s1 + k) % 5 for k in range(1, 5)]
    for i in (s3, s4, s5):
        c.crash(i)
    assert c.submit("X", node=s1)[2]
    c.run_for(0.2)                                   # (a) X reaches S2
    assert [e.command for e in c.nodes[s2].log] == ["X"]
    c.crash(s1)
    c.crash(s2)
    restarted = (s3, s4, s5)
    for i in restarted:
        c.restart(i)
    assert c.run_until(lambda c: c.leader() is not None, 10), f"seed={seed}"
    s5 = c.leader()                                  # (b) call the winner S5
    s3, s4 = [i for i in restarted if i != s5]
    assert c.submit("Y", node=s5)[2]
    c.crash(s5)                                      # Y stays on S5 only
    c.crash(s4)
    c.restart(s1), c.restart(s2)                     # (c) live: S1, S2, S3
    assert c.run_until(lambda c: c.leader() in (s1, s2), 10), f"seed={seed}"
    c.run_for(0.3)                                   # X copied to S3
    assert [e.command for e in c.nodes[s3].log] == ["X"]
    c.crash(s1)
    c.crash(s2)
    c.restart(s5), c.restart(s4)                     # (d) live: S3, S4, S5
    assert c.run_until(lambda c: c.get_state(s5)[1], 10), f"seed={seed}"
    c.run_for(0.5)
    return c


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_committing_previous_term_entry_by_counting_is_caught(seed):
    """Figure 8: a leader that commits an old-term entry by counting replicas
    loses a committed entry when S5 overwrites it: Leader Completeness."""
    with pytest.raises(SafetyViolation) as err:
        figure8(CountingCommitter, seed).stop()
    assert err.value.invariant in ("Leader Completeness", "Committed entries are never lost"), str(err.value)
    assert "X" in str(err.value)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figure8_with_the_current_term_rule_is_safe(seed):
    """With the real rule X is never committed by counting, so S5 may overwrite it."""
    c = figure8(ConsensusModule, seed)
    try:
        assert [e.command for e in c.nodes[[i for i in range(5) if c.get_state(i)[1]][0]].log] == ["Y"]
        assert c.n_committed(1)[0] == 0 or c.n_committed(1)[1] == "Y"
    finally:
        c.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_truncating_matching_entries_is_caught(seed):
    """With reordering, a stale AppendEntries arrives after a newer one; a
    follower that truncates on it deletes entries the leader already counted
    as committed."""
    rng = random.Random(seed)
    with raftkit.Cluster(3, seed=seed, node_class=Truncator) as c:
        c.set_network(delay=(0.0, 0.040))  # wide delays: requests overtake each other
        with pytest.raises(SafetyViolation) as err:
            for _ in range(2000):
                c.submit(rng.randrange(10**6))
                c.run_for(0.005)
        assert err.value.invariant in ("Committed entries are never lost", "Log Matching",
                                       "Committed entries never change"), str(err.value)


@pytest.mark.parametrize("seed", [1, 2])
def test_leader_overwriting_its_entry_is_caught(seed):
    """A leader that replaces an entry of its own log breaks Leader Append-Only."""
    with raftkit.Cluster(3, seed=seed, node_class=Overwriter) as c:
        leader = c.check_one_leader()
        c.submit("a", node=leader)
        c.run_for(0.1)
        c.submit("b", node=leader)
        with pytest.raises(SafetyViolation) as err:
            c.run_for(0.1)
        assert err.value.invariant == "Leader Append-Only"


def test_log_matching_is_checked():
    """Two logs with an entry of the same index and term but different
    commands break Log Matching (state corrupted by hand while frozen)."""
    with raftkit.Cluster(3, seed=5) as c:
        leader = c.check_one_leader()
        c.one("a", 3)
        follower = (leader + 1) % 3
        node = c.nodes[follower]
        node.log = node.log + [LogEntry(node.current_term, "forged")]
        other = c.nodes[(leader + 2) % 3]
        other.log = other.log + [LogEntry(other.current_term, "different")]
        with pytest.raises(SafetyViolation) as err:
            c.run_for(0.01)
        assert err.value.invariant == "Log Matching"


@pytest.mark.parametrize("seed", range(6))
def test_monitor_quiet_on_correct_runs_under_faults(seed):
    """A correct cluster under drops, duplication, reordering, partitions and
    crashes never trips the monitor, and the monitor really watched it."""
    rng = random.Random(seed)
    with raftkit.Cluster(5, seed=seed) as c:
        c.set_reliable(False)
        c.set_network(duplicate=0.05)
        for step in range(60):
            c.submit(step)
            r = rng.random()
            if r < 0.1:
                c.crash(rng.randrange(5))
            elif r < 0.3:
                c.restart(rng.randrange(5))
            elif r < 0.4:
                ids = list(range(5))
                rng.shuffle(ids)
                c.partition(ids[:2], ids[2:])
            elif r < 0.5:
                c.heal()
            c.run_for(0.2)
        c.heal()
        c.set_reliable(True)
        for i in range(5):
            if not c.is_alive(i):
                c.restart(i)
        c.one("final", 5, retry=True)
        assert c.monitor.leaders and c.monitor.committed and c.monitor.applied
