"""The real clock: the same node code on free-running threads and wall time."""

import threading

import raftkit


def test_real_cluster_elects_and_commits():
    """A 3-node cluster on the wall clock elects a leader and commits, and
    every one of its threads is gone after stop()."""
    before = set(threading.enumerate())
    c = raftkit.Cluster(3, clock="real", seed=1)
    try:
        assert c.run_until(lambda c: c.leader() is not None, timeout=5.0), "no leader within 5 s"
        index = c.one("real", 3)
        assert c.n_committed(index) == (3, "real")
        assert len(c.clock.threads()) >= 3
    finally:
        c.stop()
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == [], leftover


def test_real_cluster_survives_crash_and_restart():
    with raftkit.Cluster(3, clock="real", seed=2) as c:
        leader = c.check_one_leader()
        c.crash(leader)
        new = c.check_one_leader()
        assert new != leader
        c.restart(leader)
        c.one("after", 3, retry=True)
    assert c.clock.threads() == []


def test_real_clock_slowed_down():
    """speed=0.5 runs cluster time at half the wall rate."""
    with raftkit.Cluster(3, clock="real", speed=0.5, seed=3) as c:
        assert c.run_until(lambda c: c.leader() is not None, timeout=5.0)
        t0 = c.now
        c.run_for(0.2)
        assert c.now - t0 >= 0.2


def test_real_clock_with_zero_network_delay():
    """A message's arrival time is already past when its thread runs again:
    that means "do not wait", never a negative sleep (it used to fail at
    once with "expected a duration >= 0 seconds")."""
    config = raftkit.Config(rpc_delay=(0.0, 0.0))
    with raftkit.Cluster(3, clock="real", seed=4, config=config) as c:
        c.check_one_leader()
        index = c.one("no delay", 3)
        assert c.n_committed(index) == (3, "no delay")


def test_sleep_until_a_past_time_returns_at_once():
    clock = raftkit.RealClock()
    done = threading.Event()
    errors = []

    def late_sleeper():
        try:
            clock.sleep_until(clock.now() - 1.0)
            done.set()
        except BaseException as e:  # kept for the assertion below
            errors.append(e)

    clock.go(late_sleeper)
    try:
        assert done.wait(5.0), f"sleep_until a past time did not return: {errors}"
    finally:
        clock.stop()
    assert errors == []


def test_group_commit_only_on_the_real_clock_and_for_the_kit_own_methods():
    """Group commit changes when entries are persisted and sent, so the
    virtual clock (whose runs must replay) and node classes that replace
    submit, persist or the sending methods keep one persist per submit."""
    class OwnHeartbeats(raftkit.ConsensusModule):
        def send_heartbeats(self):
            super().send_heartbeats()

    with raftkit.Cluster(3, seed=1) as v:
        assert not any(node.group_commit for node in v.nodes)
    with raftkit.Cluster(3, clock="real", seed=1) as r:
        assert all(node.group_commit for node in r.nodes)
    with raftkit.Cluster(3, clock="real", seed=1, node_class=OwnHeartbeats) as o:
        assert not any(node.group_commit for node in o.nodes)


def test_group_commit_burst_is_persisted_before_it_counts():
    """A burst of submits on the real clock, then the leader crashes: what
    it committed is in its own persisted log (it counted itself toward a
    majority only for entries it had persisted), every node applied the
    burst in order, and a restarted leader comes back with it."""
    config = raftkit.Config(rpc_delay=(0.0, 0.0), election_timeout=(0.5, 1.0))  # a busy leader keeps its term
    with raftkit.Cluster(3, clock="real", seed=5, config=config) as c:
        leader = c.check_one_leader()
        last = 0
        for k in range(300):
            last, _, ok = c.submit(k, node=leader)
            assert ok, "the leader lost its term during the burst"
        assert c.run_until(lambda c: all(c.nodes[i].last_applied >= last for i in range(3)), timeout=30.0)
        committed = c.nodes[leader].commit_index
        c.crash(leader)
        c.restart(leader)
        node = c.nodes[leader]
        assert node.last_included_index + len(node.log) >= committed
        for i in range(3):
            if i != leader:
                commands = [m.command for m in c.applied(i) if m.command_valid]
                assert commands[-300:] == list(range(300))
        c.one("after the burst", 3, retry=True)
