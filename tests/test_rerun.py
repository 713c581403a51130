"""rerun(): the same seed and the same recorded calls rebuild the same run
(rewind, and the base for forking history)."""

import pytest

import raftkit


def scripted(seed):
    c = raftkit.Cluster(5, seed=seed)
    for _ in range(40):
        c.step()
    leader = c.check_one_leader()
    c.submit("a")
    for _ in range(7):
        c.step()
    c.crash(leader)
    c.partition([0, 1], [2, 3, 4])
    c.run_for(0.7)
    c.set_reliable(False)
    c.heal()
    c.restart(leader)
    c.submit("b")
    c.run_for(0.3)
    for _ in range(5):
        c.step()
    return c


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rerun_reproduces_the_run(seed):
    """A rerun reaches the same state with the same trace, even mid-way
    through events that share one instant (step())."""
    c = scripted(seed)
    copy = c.rerun()
    try:
        assert copy.trace_digest() == c.trace_digest(), f"seed={seed}"
        assert (copy.now, copy.clock.events) == (c.now, c.clock.events)
        assert repr(copy) == repr(c)
    finally:
        c.stop()
        copy.stop()


@pytest.mark.parametrize("seed", [1, 2])
def test_rerun_until_rewinds(seed):
    """rerun(until=t) is the run as it was at time t: its trace is the
    original's prefix up to t; acting on it forks a new history."""
    c = scripted(seed)
    t = c.now / 2
    past = c.rerun(until=t)
    try:
        assert past.now == t
        assert [e.canonical() for e in past.trace] == [e.canonical() for e in c.trace if e.time <= t]
        past.crash(0)  # a different future
        past.run_for(1.0)
        assert past.trace_digest() != c.trace_digest()
        again = past.rerun()
        assert again.trace_digest() == past.trace_digest()
        again.stop()
    finally:
        c.stop()
        past.stop()


def test_rerun_needs_the_virtual_clock():
    with raftkit.Cluster(3, clock="real") as c:
        with pytest.raises(RuntimeError, match="virtual clock"):
            c.rerun()


def test_follow_goes_on_along_the_recorded_future():
    """A rewound copy can go forward again along the original's actions and lands on the same run."""
    c = scripted(4)
    past = c.rerun(until=c.now / 3)
    try:
        past.follow(c)
        assert past.trace_digest() == c.trace_digest()
        past.crash(1)  # a fork: its history is no longer a prefix of the original's
        with pytest.raises(ValueError, match="prefix"):
            past.follow(c)
    finally:
        c.stop()
        past.stop()


def test_rerun_of_a_data_dir_cluster_runs_in_memory(tmp_path):
    with raftkit.Cluster(3, seed=5, data_dir=tmp_path / "d") as c:
        c.check_one_leader()
        c.one("x", 3)
        before = sorted(p.read_bytes() for p in (tmp_path / "d").iterdir())
        copy = c.rerun()
        assert copy.trace_digest() == c.trace_digest() and copy.data_dir is None
        copy.crash(0)
        copy.stop()
        assert sorted(p.read_bytes() for p in (tmp_path / "d").iterdir()) == before
    with raftkit.Cluster(3, seed=5, data_dir=tmp_path / "d") as again:  # recovered state: cannot rerun
        with pytest.raises(RuntimeError, match="recovered"):
            again.rerun()


def test_rerun_to_an_event_count():
    """rerun(events=k) stops right after the k-th scheduler event: one step() later is the next event."""
    c = scripted(6)
    try:
        k = c.clock.events // 2
        copy = c.rerun(events=k)
        assert copy.clock.events == k
        nxt = copy.step()
        assert copy.clock.events == k + 1 and nxt is not None
        copy.stop()
    finally:
        c.stop()
