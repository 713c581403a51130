"""Nodes in processes of their own (``Cluster(..., isolation="process")``):
the same runs as in-process, and a boundary hostile nodes cannot cross."""

from __future__ import annotations

import os

import pytest

import raftkit
from raftkit.errors import DeadlockError, NodeError, SafetyViolation
from tests import isolation_nodes as hostile


def elections(c):
    leader = c.check_one_leader()
    c.disconnect(leader)
    c.check_one_leader()
    c.connect(leader)
    c.run_for(1.0)


def replication_with_faults(c):
    c.check_one_leader()
    for k in range(5):
        c.one(f"a{k}", c.n)
    c.set_reliable(False)
    c.set_network(duplicate=0.1)
    leader = c.check_one_leader()
    c.partition([leader, (leader + 1) % c.n], [j for j in range(c.n) if j not in (leader, (leader + 1) % c.n)])
    c.run_for(2.0)
    c.heal()
    c.set_long_reordering(True)
    for k in range(5):
        c.one(f"b{k}", c.n - 1, retry=True)
    c.set_reliable(True)
    c.set_long_reordering(False)
    c.one("end", c.n, retry=True)


def crash_restart(c):
    c.one("x", c.n, retry=True)
    for i in range(c.n):
        c.crash(i)
    c.run_for(0.5)
    for i in range(c.n):
        c.restart(i)
    c.one("y", c.n, retry=True)
    leader = c.check_one_leader()
    c.crash(leader)
    c.one("z", c.n - 1, retry=True)
    c.restart(leader)
    c.one("w", c.n, retry=True)


def snapshots(c):
    c.check_one_leader()
    for k in range(25):
        c.one(f"s{k}", c.n, retry=True)
    victim = (c.leader() + 1) % c.n
    c.disconnect(victim)
    for k in range(25):
        c.one(f"t{k}", c.n - 1, retry=True)
    c.crash(victim)
    c.restart(victim)
    c.connect(victim)
    c.one("u", c.n, retry=True)


SCENARIOS = [(elections, 5, {}), (replication_with_faults, 5, {}), (crash_restart, 3, {}),
             (snapshots, 3, {"snapshot_interval": 10})]


def run(scenario, n, seed, isolation, **options):
    with raftkit.Cluster(n, seed=seed, isolation=isolation, **options) as c:
        scenario(c)
        return c.trace_digest(), len(c.trace), c.now


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("scenario,n,options", SCENARIOS, ids=[s[0].__name__ for s in SCENARIOS])
def test_same_trace_in_process_and_isolated(scenario, n, options, seed):
    inside = run(scenario, n, seed, None, **options)
    apart = run(scenario, n, seed, "process", **options)
    assert apart == inside
    assert inside[1] > 50  # the scenario did something


def test_a_crashed_node_process_dies_and_a_restart_is_a_fresh_process():
    with raftkit.Cluster(3, seed=4, isolation="process", node_class=hostile.Remembers) as c:
        c.one("x", 3)
        pid = c._hosts.hosts[1].pid
        assert os.path.exists(f"/proc/{pid}")
        c.crash(1)
        assert not os.path.exists(f"/proc/{pid}")  # killed and reaped: not even a zombie
        c.restart(1)
        assert c._hosts.hosts[1].pid != pid
        c.one("y", 3)
        notes = [e.detail for e in c.trace if e.kind == "note" and e.node == 1]
        assert notes == ["incarnations seen: 1", "incarnations seen: 1"]  # module memory is gone
        assert [m.command for m in c.applied(1) if m.command_valid] == ["x", "y"]  # from what it persisted


def test_in_process_the_module_memory_survives_which_is_why_isolation_matters():
    hostile.INCARNATIONS.clear()
    with raftkit.Cluster(3, seed=4, node_class=hostile.Remembers) as c:
        c.run_for(0.1)
        c.restart(1)
        assert [e.detail for e in c.trace if e.kind == "note"][-1] == "incarnations seen: 4"


def test_stop_ends_every_node_process():
    c = raftkit.Cluster(3, seed=1, isolation="process")
    c.check_one_leader()
    pids = [h.pid for h in c._hosts.hosts]
    c.stop()
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)


@pytest.mark.parametrize("cls,error,words", [
    (hostile.ExitsOnVote, NodeError, "process exited with code 0"),
    (hostile.KilledOnVote, NodeError, "was killed by signal SIGKILL"),
    (hostile.LoopsOnVote, DeadlockError, "in request_vote\n"),  # a frame of its stack, with the loop's code line
    (hostile.HugeFrame, NodeError, "over the limit"),
    (hostile.Garbage, NodeError, "unreadable frame"),
    (hostile.ForgesCode, NodeError, "may not cross the trust boundary"),
    (hostile.LiesAboutState, NodeError, "not a CMState"),
    (hostile.ThreadBomb, NodeError, "live threads, the most one node may have"),
    (hostile.EmitsForever, DeadlockError, "without reaching a kit primitive"),
    (hostile.TermBecomesTrue, NodeError, "self.current_term is True, not a number"),
])
def test_a_hostile_node_fails_its_run_with_an_accurate_message(cls, error, words):
    if os.path.exists(hostile.ForgesCode.MARK):
        os.remove(hostile.ForgesCode.MARK)
    clusters = []
    with pytest.raises(error) as info:
        clusters.append(raftkit.Cluster(3, seed=1, isolation="process", node_class=cls, watchdog=1.0))
        clusters[0].check_one_leader()
    assert words in str(info.value)
    for c in clusters:
        c.stop()
    assert not os.path.exists(hostile.ForgesCode.MARK)  # nothing ran in this process
    with raftkit.Cluster(3, seed=1, isolation="process") as fine:  # and the next cluster is unaffected
        fine.check_one_leader()


def test_a_class_defined_in_a_notebook_is_refused_with_a_reason():
    class Local(raftkit.ConsensusModule):
        pass
    with pytest.raises(ValueError, match="put it in a module"):
        raftkit.Cluster(3, isolation="process", node_class=Local)


def test_bad_isolation_value_and_what_isolation_does_not_support_yet():
    from raftkit.kv import KVService
    with pytest.raises(ValueError, match="isolation"):
        raftkit.Cluster(3, isolation="thread")
    with pytest.raises(ValueError, match="virtual clock"):
        raftkit.Cluster(3, isolation="process", clock="real")
    with pytest.raises(ValueError, match="recording service only"):  # it would unpickle what nodes send
        raftkit.Cluster(3, isolation="process", service_class=KVService)


@pytest.mark.parametrize("seed", [1, 2])
def test_safety_violations_are_caught_on_the_trusted_side_at_the_same_event(seed):
    from raftkit.config import Config
    from tests.broken import DoubleVoter
    found = []
    for isolation in (None, "process"):
        c = raftkit.Cluster(3, seed=seed, config=Config(election_timeout=(0.150, 0.150)), node_class=DoubleVoter,
                            isolation=isolation)
        with pytest.raises(SafetyViolation) as err:
            c.run_for(5)
        found.append((err.value.invariant, str(err.value.event), c.trace_digest()))
        c.stop()
    assert found[0] == found[1] and found[0][0] == "Election Safety"


def _battery_runs():
    from raftkit.grading import battery
    return [(ex, sc.name) for ex in range(1, 7) for sc in battery.EXERCISES[ex].scenarios]


def _digests(ex, name, node_class):
    from raftkit.grading import battery
    from raftkit.grading.context import ScenarioContext
    sc = battery.EXERCISES[ex].scenario(name)
    ctx = ScenarioContext()
    try:
        sc(ctx, node_class, sc.seeds[0])
        error = None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    digests = [c.trace_digest() for c in ctx.clusters]
    ctx.stop()
    return digests, error


@pytest.mark.slow
@pytest.mark.parametrize("ex,name", _battery_runs())
def test_every_battery_scenario_gives_the_same_digests_isolated(ex, name):
    """Exercises 1-6 on the reference node: the same clusters, the same
    traces, the same verdict (white-box scenarios included: their fields and
    handler calls go through the node's proxy)."""
    from raftkit.isolation.process import class_spec, hosted_class
    inside = _digests(ex, name, raftkit.ConsensusModule)
    apart = _digests(ex, name, hosted_class(class_spec(raftkit.ConsensusModule)))
    assert apart == inside
    assert inside[0] and inside[1] is None
