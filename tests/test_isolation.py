"""Nodes in processes of their own (``Cluster(..., isolation="process")``):
the same runs as in-process, and a boundary hostile nodes cannot cross."""

from __future__ import annotations

import os

import pytest

import raftkit
from raftkit.errors import DeadlockError, NodeError, SafetyViolation
from raftkit.grading.context import ScenarioContext
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


def test_a_raftkit_folder_in_the_working_folder_is_not_what_the_nodes_run(tmp_path, monkeypatch):
    """An instructor who starts the grader next to another copy of the kit:
    node processes still load the kit the trusted side runs."""
    from raftkit.isolation.process import close_templates
    (tmp_path / "raftkit").mkdir()
    (tmp_path / "raftkit" / "__init__.py").write_text("raise ImportError('the working folder has another raftkit')\n")
    monkeypatch.chdir(tmp_path)
    close_templates()  # a fresh template, started in this folder
    with raftkit.Cluster(3, seed=1, isolation="process") as c:
        c.one("x", 3)


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
    (hostile.LogLengthLies, NodeError, "broke the protocol: a bad log report"),
    (hostile.ReportIsTrue, NodeError, "broke the protocol: a bad state report"),
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
    return [(ex, sc.name) for ex in range(1, 8) for sc in battery.EXERCISES[ex].scenarios]


def _digests(ex, name, impl, eager=None):
    """The digests and error of a battery scenario's run; ``eager``: whether
    every node process must have run on a core of its own (``_on_cores``;
    exercise 7's clerks never do)."""
    from raftkit.grading import battery
    from raftkit.grading.context import ScenarioContext
    from raftkit.isolation.process import mispredicted
    sc = battery.EXERCISES[ex].scenario(name)
    ctx = ScenarioContext()
    try:
        sc(ctx, impl, sc.seeds[0])
        error = None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
    digests = [c.trace_digest() for c in ctx.clusters]
    assert not any(mispredicted(c) for c in ctx.clusters)
    if eager is not None:
        assert all(h.eager is eager for c in ctx.clusters for h in c._hosts.hosts if h is not None)
        assert not any(h.eager for c in ctx.clusters for h in getattr(c._hosts, "clerks", ()))  # (round trips)
    ctx.stop()
    return digests, error


SPARE = len(os.sched_getaffinity(0)) > 1  # a core to spare for node processes (raftkit.clock._spare_cpu)
CORES = [False, pytest.param(True, marks=pytest.mark.skipif(not SPARE, reason="one core"))]  # spare: see _on_cores


def _on_cores(monkeypatch, spare: bool) -> bool:
    """Predicting clusters made next run their node processes on the
    scheduler's core (as the grader's workers, given a core each by
    RAFTKIT_CPU), or on a core of their own (``spare``, where the machine
    has one), where they run predicted frames while the scheduler goes on
    (process.py: ``NodeHost._eager``). Returns ``spare``."""
    if spare:
        monkeypatch.delenv("RAFTKIT_CPU", raising=False)
    else:
        monkeypatch.setenv("RAFTKIT_CPU", "0")
    return spare


@pytest.mark.slow
@pytest.mark.parametrize("ex,name", _battery_runs())
def test_every_battery_scenario_gives_the_same_digests_isolated(ex, name, monkeypatch):
    """Exercises 1-6 on the reference node, exercise 7 on the kit's store
    and clerk: the same clusters, the same traces, the same verdict
    (white-box scenarios included: their fields and handler calls go through
    the node's proxy; exercise 7's dedup table checks a store in a process
    of its own, and has no cluster). Also as the grader runs them, with
    predictions: not one prediction fails on the reference, whether the
    node processes share the scheduler's core or run ahead on their own."""
    from raftkit.grading.battery import KVImpl
    from raftkit.isolation.kvprocess import hosted_kv, kv_spec
    from raftkit.isolation.process import class_spec, hosted_class
    from raftkit.kv import Clerk, KVStore
    if ex == 7:
        inside = _digests(ex, name, KVImpl(KVStore, Clerk))
        apart = _digests(ex, name, KVImpl(*hosted_kv(kv_spec(KVStore, Clerk))))
        predicting = KVImpl(*hosted_kv(kv_spec(KVStore, Clerk), predict=True))
    else:
        inside = _digests(ex, name, raftkit.ConsensusModule)
        apart = _digests(ex, name, hosted_class(class_spec(raftkit.ConsensusModule)))
        predicting = hosted_class(class_spec(raftkit.ConsensusModule), predict=True)
    for spare in {False, SPARE}:
        assert _digests(ex, name, predicting, eager=_on_cores(monkeypatch, spare)) == inside
    assert apart == inside
    assert inside[1] is None and (inside[0] or name == "dedup table")


# --------------------------------------------------------------------------
# Predicted ticks (what the grader runs): the same run, or a strict rerun
# --------------------------------------------------------------------------

def _predicting(node_class):
    from raftkit.isolation.process import class_spec, hosted_class
    return hosted_class(class_spec(node_class), predict=True)


def _workload(c):
    """Elections, a burst of commands, a crash and a restart, a partition."""
    c.check_one_leader()
    for k in range(20):
        c.run_for(0.02)
        c.submit(k)
    c.crash(1)
    c.run_for(0.5)
    c.restart(1)
    c.partition([0, 1], [2, 3, 4])
    c.run_for(1.0)
    c.heal()
    c.run_for(1.0)
    return c.trace_digest()


@pytest.mark.parametrize("spare", CORES)
@pytest.mark.parametrize("node_class", [raftkit.ConsensusModule, hostile.KeepsItsTimeout])
def test_predicted_ticks_leave_every_event_where_it_was(node_class, spare, monkeypatch):
    """The reference timer, and one that keeps its timeout to itself (then
    ticks are predicted until the shortest timeout the config allows); node
    processes on the scheduler's core, or running ahead on a core of their own."""
    from raftkit.isolation.process import mispredicted
    with raftkit.Cluster(5, seed=4, node_class=node_class) as c:
        inside = _workload(c)
    _on_cores(monkeypatch, spare)
    with raftkit.Cluster(5, seed=4, node_class=_predicting(node_class)) as c:
        assert all(h.eager is spare for h in c._hosts.hosts)
        assert _workload(c) == inside
        assert mispredicted(c) is None
        assert c._hosts.predicted > 1000  # most ticks were not sent one by one


def test_only_a_predicting_cluster_on_a_clock_with_a_core_to_spare_runs_its_nodes_ahead(monkeypatch):
    """A strict cluster's every turn is a round trip (best on one core); a
    grader's worker, given one core (RAFTKIT_CPU), keeps its nodes on it."""
    from raftkit.isolation.process import class_spec, hosted_class
    for spare in {False, SPARE}:
        _on_cores(monkeypatch, spare)
        for predict in (False, True):
            impl = hosted_class(class_spec(raftkit.ConsensusModule), predict=predict)
            with raftkit.Cluster(3, seed=1, node_class=impl) as c:
                assert [h.eager for h in c._hosts.hosts] == [spare and predict] * 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spare", CORES)
def test_a_long_quiet_stretch_defers_a_bounded_batch_of_ticks(spare, monkeypatch):
    """100 s without an election: thousands of ticks predicted, never more
    than a small batch waiting per node process (a batch larger than the
    sockets' buffers would have both sides waiting to write), whether they
    are written with the next frame that waits or a few at a time."""
    from raftkit.isolation.process import mispredicted
    config = raftkit.Config(election_timeout=(200.0, 200.0))
    with raftkit.Cluster(3, seed=1, config=config) as c:
        c.run_for(100)
        inside = c.trace_digest()
    _on_cores(monkeypatch, spare)
    with raftkit.Cluster(3, seed=1, config=config, node_class=_predicting(raftkit.ConsensusModule)) as c:
        most = 0
        for _ in range(100):
            c.run_for(1)
            most = max(most, *(len(h.expected) for h in c._hosts.hosts))
        assert c.trace_digest() == inside and mispredicted(c) is None
        assert c._hosts.predicted > 25_000 and most <= 64


def test_a_tick_that_does_more_than_predicted_fails_the_run_it_is_in():
    from raftkit.isolation.process import Mispredicted, mispredicted
    with raftkit.Cluster(3, seed=1, node_class=_predicting(hostile.NotesItsTicks)) as c:
        with pytest.raises(Mispredicted, match="a tick predicted idle did more"):
            c.run_for(2)
        assert "node" in mispredicted(c)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spare", CORES)
@pytest.mark.parametrize("node_class", [hostile.LoopsOnATick, hostile.ExitsOnATick])
def test_a_node_process_that_hangs_or_ends_in_a_tick_predicted_idle_is_found_within_a_batch(node_class, spare,
                                                                                            monkeypatch):
    """Nothing comes back for a silent tick, so only the frames that wait
    tell. At most a bounded batch of predicted frames is ever unconfirmed,
    whether they go with the next frame that waits or a few at a time
    ahead of it: a long quiet stretch finds such a node within a batch
    (frames written ahead without a bound would fill the socket while the
    node process reads nothing, and leave the scheduler waiting to write)."""
    from raftkit.isolation.process import Mispredicted
    _on_cores(monkeypatch, spare)
    config = raftkit.Config(election_timeout=(200.0, 200.0))
    with raftkit.Cluster(3, seed=1, config=config, node_class=_predicting(node_class), watchdog=1.0) as c:
        with pytest.raises(Mispredicted, match="^node 1"):
            c.run_for(100)
        assert c.now < 1.4  # its 7th tick at 0.07 s, then at most 128 ticks of 10 ms (64 on one core)


def test_a_tick_that_does_more_just_before_the_run_ends_is_still_caught():
    """A node process sends nothing back for a tick that went as predicted
    (a silent tick), so the last ticks of a run are confirmed when its
    result is taken: the host answers "sync" only after them, and a tick
    that did more has sent a "miss" first."""
    from raftkit.isolation.process import mispredicted
    config = raftkit.Config(election_timeout=(200.0, 200.0))
    with raftkit.Cluster(3, seed=1, config=config, node_class=_predicting(hostile.NotesItsTicks)) as c:
        c.run_for(0.065)  # six ticks each: all silent, nothing read back
        assert c._hosts.predicted >= 15 and mispredicted(c) is None
        c.run_for(0.01)   # the seventh notes itself in the trace
        assert c._hosts.mispredicted is None  # nothing has been read from the node processes since
        assert "a tick predicted idle did more" in mispredicted(c)


@pytest.mark.parametrize("node_class", [raftkit.ConsensusModule, hostile.NotesItsTicks])
def test_the_grader_runs_a_mispredicted_run_again_and_reports_the_real_one(node_class):
    """A timer that does more than tick is graded on its strict run: the
    same result and the same trace as in-process."""
    from raftkit.grading import battery
    from raftkit.grading.runs import run_scenario
    sc = battery.EXERCISES[1].scenario("initial election")
    inside = run_scenario(sc, node_class, 1, keep=True, stop=False)
    apart = run_scenario(sc, _predicting(node_class), 1, keep=True, stop=False)
    try:
        assert apart["ok"] and inside["ok"]
        digests = [[c.trace_digest() for c in run["context"].clusters] for run in (inside, apart)]
        assert digests[0] == digests[1]
        reran = not apart["context"].clusters[0].node_class.raftkit_predict
        assert reran == (node_class is hostile.NotesItsTicks)
        notes = [e for e in inside["context"].clusters[0].trace if e.kind == "note"]
        assert bool(notes) == (node_class is hostile.NotesItsTicks)
    finally:
        inside["context"].stop()
        apart["context"].stop()


def _asks(c):
    """The harness asks every node for its state, and followers to submit."""
    answers = []
    for k in range(30):
        c.run_for(0.05)
        answers += [c.nodes[i].get_state() for i in range(c.n)]
        answers += [c.nodes[i].submit(f"x{k}") for i in range(c.n) if not c.nodes[i].get_state()[1]]
    return answers, c.trace_digest()


def test_predicted_get_state_and_follower_submit_answer_as_the_node_does():
    from raftkit.isolation.process import mispredicted
    with raftkit.Cluster(3, seed=2) as c:
        inside = _asks(c)
    with raftkit.Cluster(3, seed=2, node_class=_predicting(raftkit.ConsensusModule)) as c:
        assert _asks(c) == inside
        assert mispredicted(c) is None
        assert c._hosts.predicted_calls > 200  # 30 rounds of 3 get_state() twice, 2 follower submit()


def test_a_call_that_does_more_than_answer_fails_the_run_and_is_graded_on_its_rerun():
    """A ``get_state`` that notes itself in the trace breaks its prediction
    (the note comes later than in-process); the grader's rerun gives the
    in-process trace."""
    from raftkit.grading import battery
    from raftkit.grading.runs import run_scenario
    from raftkit.isolation.process import Mispredicted, mispredicted
    with raftkit.Cluster(3, seed=2, node_class=_predicting(hostile.CountsItsCallers)) as c:
        with pytest.raises(Mispredicted, match=r"predicted (get_state|submit)\(\)"):
            _asks(c)
        assert "node" in mispredicted(c)
    sc = battery.EXERCISES[1].scenario("initial election")
    inside = run_scenario(sc, hostile.CountsItsCallers, 1, keep=True, stop=False)
    apart = run_scenario(sc, _predicting(hostile.CountsItsCallers), 1, keep=True, stop=False)
    try:
        assert apart["ok"] and inside["ok"]
        assert not apart["context"].clusters[0].node_class.raftkit_predict  # it was run again, strictly
        assert ([c.trace_digest() for c in inside["context"].clusters]
                == [c.trace_digest() for c in apart["context"].clusters])
    finally:
        inside["context"].stop()
        apart["context"].stop()


def test_predicted_rpcs_leave_every_event_where_it_was():
    """Followers accept heartbeats, and leaders and candidates read replies
    (lost ones too), predicted from the mirrors: the trace is the in-process
    one, crashes, partitions and lost messages included."""
    from raftkit.isolation.process import mispredicted
    with raftkit.Cluster(5, seed=5) as c:
        c.set_reliable(False)
        inside = _workload(c)
    with raftkit.Cluster(5, seed=5, node_class=_predicting(raftkit.ConsensusModule)) as c:
        c.set_reliable(False)
        assert _workload(c) == inside and mispredicted(c) is None
        assert c._hosts.predicted_handlers > 100 and c._hosts.predicted_replies > 300
        assert c._hosts.predicted_rounds > 40 and c._hosts.predicted_wakes > 40


def test_predicted_appends_keep_in_the_mirror_the_entries_their_saved_state_was_made_of():
    """A predicted submit, and a follower's predicted AppendEntries with
    entries, put into the mirror's log the very ``LogEntry`` objects their
    saved state was made of: the next prediction's ``_saved_state`` then
    compares the log by identity (equal entries in other objects cost one
    Python ``__eq__`` each, a log's length on every save)."""
    from raftkit.isolation.process import mispredicted
    with raftkit.Cluster(3, seed=4, node_class=_predicting(raftkit.ConsensusModule)) as c:
        leader = c.check_one_leader()
        for k in range(30):
            c.submit(k)
            c.run_for(0.02)
        c.run_for(0.5)
        assert mispredicted(c) is None and c._hosts.predicted_calls > 20 and c._hosts.predicted_handlers > 20
        for i in range(3):
            host, mirror = c._hosts.hosts[i], c.nodes[i].log
            saved = host.encoded[0]
            assert [(e.term, e.command) for e in mirror][-30:] == [(c.nodes[leader].current_term, k) for k in range(30)]
            assert len(saved) == len(mirror) and all(a is b for a, b in zip(saved, mirror)), f"node {i}"


@pytest.mark.parametrize("node_class, what", [
    (hostile.NotesHeartbeats, "heartbeat"), (hostile.NotesHeartbeatReplies, "reply"),
    (hostile.NotesHeartbeatRounds, "heartbeat round"), (hostile.NotesApplies, "applier"),
    (hostile.NotesCommits, "commit"), (hostile.NotesSubmits, "submit"),
    (hostile.NotesAppends, "AppendEntries with entries")])
def test_a_step_that_does_more_than_predicted_is_graded_on_its_rerun(node_class, what):
    """A follower that notes the heartbeats it accepts, a leader that notes
    the replies it reads, the rounds it sends, the commits replies bring or
    the commands it takes, an applier that notes each entry it applies:
    each breaks a prediction, and the grader's rerun gives the in-process trace."""
    from raftkit.grading import battery
    from raftkit.grading.runs import run_scenario
    from raftkit.isolation.process import Mispredicted, mispredicted
    with raftkit.Cluster(3, seed=2, node_class=_predicting(node_class)) as c:
        with pytest.raises(Mispredicted, match=what):
            _workload_small(c)
            c.run_for(3)
        assert "node" in mispredicted(c)
    sc = battery.EXERCISES[3].scenario("basic agreement")
    inside = run_scenario(sc, node_class, 1, keep=True, stop=False)
    apart = run_scenario(sc, _predicting(node_class), 1, keep=True, stop=False)
    try:
        assert apart["ok"] and inside["ok"]
        assert not apart["context"].clusters[0].node_class.raftkit_predict  # it was run again, strictly
        assert ([c.trace_digest() for c in inside["context"].clusters]
                == [c.trace_digest() for c in apart["context"].clusters])
        assert any(e.kind == "note" for e in inside["context"].clusters[0].trace)
    finally:
        inside["context"].stop()
        apart["context"].stop()


@pytest.mark.parametrize("node_class, written", [(hostile.NotesSubmits, ("persist",)),
                                                 (hostile.NotesCommits, ("advance_commit_index",)),
                                                 (hostile.NotesHeartbeatRounds, ("send_heartbeats",)),
                                                 (hostile.NotesAppends, ("append_entries",))])
def test_what_students_write_is_not_predicted(node_class, written):
    """The predictions that rest on a method the exercise has students
    write are off while it is graded: a class that differs from the
    reference there runs once, as predicted, not twice."""
    from raftkit.isolation.process import class_spec, hosted_class, mispredicted
    impl = hosted_class(class_spec(node_class), predict=True, written=written)
    with raftkit.Cluster(3, seed=2, node_class=impl) as c:
        _workload_small(c)
        c.run_for(1)
        assert mispredicted(c) is None and c._hosts.predicted > 100
        assert any(e.kind == "note" for e in c.trace)


def test_turns_sent_ahead_leave_every_event_where_it_was():
    """A leader's heartbeat starts a thread per peer: their turns go to the
    node process together, and the trace is the in-process one."""
    from raftkit.isolation.process import mispredicted
    with raftkit.Cluster(5, seed=3) as c:
        inside = _workload(c)
    with raftkit.Cluster(5, seed=3, node_class=_predicting(raftkit.ConsensusModule)) as c:
        assert _workload(c) == inside and mispredicted(c) is None
        assert c._hosts.turns_ahead > 200


def test_threads_started_by_turns_sent_ahead_run_after_the_rest_of_the_batch():
    """Threads that a turn of a batch starts come after the batch's other
    turns: the node process does not start them as that turn yields."""
    from raftkit.isolation.process import mispredicted
    with raftkit.Cluster(3, seed=6, node_class=hostile.StartsFanOuts) as c:
        c.run_for(0.5)
        inside = c.trace_digest()
    with raftkit.Cluster(3, seed=6, node_class=_predicting(hostile.StartsFanOuts)) as c:
        c.run_for(0.5)
        assert c.trace_digest() == inside and mispredicted(c) is None
        assert c._hosts.turns_ahead > 3 * 6


def test_a_cluster_run_event_by_event_predicts_no_turn_it_cannot_see_run():
    """Step by step the harness may call a node between two events: a
    thread's new threads then start in its process only when their turns
    are sent, and every call between steps is answered as in-process."""
    from raftkit.isolation.process import mispredicted

    def stepping(c):
        states = []
        for k in range(1500):
            c.step()
            if k % 7 == 0:
                states.append([c.nodes[i].get_state() for i in range(c.n)])
        return states, c.trace_digest()
    with raftkit.Cluster(3, seed=5) as c:
        inside = stepping(c)
    with raftkit.Cluster(3, seed=5, node_class=_predicting(raftkit.ConsensusModule)) as c:
        assert stepping(c) == inside and mispredicted(c) is None


def test_a_run_stopped_between_turns_sent_ahead_fails_the_prediction(monkeypatch):
    """The clock stops (here: a check after an event fails) while turns sent
    ahead to a node have not run here: the next frame for that node fails
    the prediction, rather than reach a process that ran them."""
    from raftkit.cluster import _Watcher
    from raftkit.isolation.process import Mispredicted

    def after_event(watcher, task):
        if any(h is not None and h.ahead for h in c._hosts.hosts):
            raise RuntimeError("stop here")
    with raftkit.Cluster(3, seed=2, node_class=_predicting(raftkit.ConsensusModule)) as c:
        c.check_one_leader()
        monkeypatch.setattr(_Watcher, "after_event", after_event)
        c.clock.on_yield = c._watcher.after_event
        with pytest.raises(RuntimeError, match="stop here"):
            c.run_for(1)
        waiting = next(i for i, h in enumerate(c._hosts.hosts) if h.ahead)
        with pytest.raises(Mispredicted, match="before the turns sent ahead"):
            c.nodes[waiting].get_state()


def test_a_request_that_fails_at_once_among_turns_sent_ahead_is_graded_on_its_rerun():
    """A thread of a fan-out sleeps holding its lock: the clock raises at
    once, where the node process had already started the next turn. The
    prediction fails, and the grader's strict rerun reports the error as
    in-process."""
    from raftkit.grading import battery
    from raftkit.grading.runs import run_scenario
    from raftkit.isolation.process import Mispredicted, mispredicted
    with raftkit.Cluster(3, seed=2, node_class=_predicting(hostile.SleepsHoldingItsLock)) as c:
        with pytest.raises(Mispredicted, match="sleep.. failed at once"):
            c.run_for(2)
        assert mispredicted(c)
    sc = battery.EXERCISES[1].scenario("initial election")
    inside = run_scenario(sc, hostile.SleepsHoldingItsLock, 1, keep=True, stop=False)
    apart = run_scenario(sc, _predicting(hostile.SleepsHoldingItsLock), 1, keep=True, stop=False)
    try:
        assert not inside["ok"] and "self.mu was held" in str(inside["error"])
        assert not apart["context"].clusters[0].node_class.raftkit_predict  # it was run again, strictly
        first_line = [(run["ok"], type(run["error"]), str(run["error"]).splitlines()[0]) for run in (inside, apart)]
        assert first_line[0] == first_line[1]
    finally:
        inside["context"].stop()
        apart["context"].stop()


def test_channel_operations_that_do_not_block_cost_no_round_trip(monkeypatch):
    """``try_send``, ``try_recv`` and ``len`` are decided in the node's
    process, on its copy of the channel, and performed and checked here."""
    from raftkit.isolation.process import NodeHost
    asked, posted = [], []
    request, post = NodeHost._request, NodeHost._post
    monkeypatch.setattr(NodeHost, "_request", lambda self, op, args: asked.append(op) or request(self, op, args))
    monkeypatch.setattr(NodeHost, "_post", lambda self, msg: posted.append(msg[2]) or post(self, msg))
    with raftkit.Cluster(3, seed=2, isolation="process") as c:
        _workload_small(c)
    assert {"try_send", "try_recv", "len"}.isdisjoint(asked) and "recv" in asked
    assert posted.count("try_send") > 10


def _workload_small(c):
    c.check_one_leader()
    for k in range(10):
        c.submit(k)
        c.run_for(0.05)


@pytest.mark.parametrize("node_class, error", [(hostile.LiesAboutItsChannel, "its copy of channel"),
                                               (hostile.MisnumbersAChannel, r"chan\(number, capacity\)")])
def test_a_node_process_whose_copy_of_a_channel_is_wrong_fails_its_run(node_class, error):
    with pytest.raises(NodeError, match=rf"node 0's process broke the protocol: {error}"):
        raftkit.Cluster(3, seed=2, node_class=node_class, isolation="process")


def test_a_forged_miss_fails_a_strict_run_as_a_bad_frame_and_a_predicting_one_as_a_prediction():
    """A "miss" frame nobody asked for: without predictions it is a frame
    the protocol does not have; with them, the run is run again strictly."""
    from raftkit.isolation.process import Mispredicted
    with pytest.raises(NodeError, match="broke the protocol: a frame that is not a request, a post or an end"):
        raftkit.Cluster(3, seed=2, node_class=hostile.ForgesAMiss, isolation="process")
    with pytest.raises(Mispredicted, match=r"a tick predicted idle did more \(forged\)"):
        raftkit.Cluster(3, seed=2, node_class=_predicting(hostile.ForgesAMiss))


def test_a_mispredicted_exercise_7_run_is_run_again_with_both_classes_strict(monkeypatch):
    """Exercise 7's classes are two (store and clerk): the rerun makes both strict."""
    from raftkit.grading import battery, runs
    from raftkit.grading.battery import KVImpl
    from raftkit.isolation.kvprocess import hosted_kv, kv_spec
    from raftkit.kv import Clerk, KVStore
    flagged = []
    monkeypatch.setattr(runs, "mispredicted", lambda c: not flagged and not flagged.append(c))  # the first run only
    sc = battery.EXERCISES[7].scenario("basic operations")
    run = runs.run_scenario(sc, KVImpl(*hosted_kv(kv_spec(KVStore, Clerk), predict=True)), 1, keep=True, stop=False)
    try:
        assert run["ok"] and flagged
        kv = run["context"].clusters[0]
        assert not kv.node_class.raftkit_predict and not kv._hosts.predict
        assert kv._hosts.predicted == 0
    finally:
        run["context"].stop()


# --------------------------------------------------------------------------
# Exercise 7: KV servers and clerks in processes of their own
# --------------------------------------------------------------------------

def kv_workload(kv):
    """Two clients working while a server crashes and replies get lost."""
    done = []

    def client(clerk):
        for k in range(8):
            clerk.append(f"k{k % 2}", f"{clerk.client_id}.{k};")
            kv.clock.sleep(0.01)
        done.append(clerk.client_id)

    kv.check_one_leader()
    kv.set_network(reply_drop=0.2)
    for _ in range(2):
        kv.start_client(client)
    kv.run_for(1.0)
    kv.crash(1)
    kv.run_for(0.5)
    kv.restart(1)
    kv.run_until(lambda kv: len(done) == 2, 60)
    kv.set_network(reply_drop=0.0)
    assert len(done) == 2
    return kv.get("k0"), kv.get("k1")


@pytest.mark.parametrize("seed", [1, 2])
def test_a_kv_cluster_runs_the_same_with_servers_and_clerks_in_processes(seed):
    from raftkit.kvcluster import KVCluster
    runs = []
    for isolation in (None, "process"):
        with KVCluster(3, seed=seed, snapshot_interval=5, isolation=isolation) as kv:
            values = kv_workload(kv)
            runs.append((kv.trace_digest(), values, [kv.data(i) for i in range(3)],
                         [(e.client_id, e.kind, e.key, e.value, e.output, e.call, e.ret) for e in kv.history]))
            if isolation:
                pids = [h.pid for h in kv._hosts.hosts + kv._hosts.clerks]
                assert type(kv.clerks[0]).__name__ == "Clerk" and len(pids) == 5
    assert runs[0] == runs[1]
    assert sorted(runs[0][1][0].split(";")) == sorted([f"{c}.{k}" for c in (0, 1) for k in (0, 2, 4, 6)] + [""])
    assert not any(os.path.exists(f"/proc/{p}") for p in pids)  # servers and clerks end with the cluster


def test_a_kv_cluster_in_processes_takes_only_the_kits_service():
    from raftkit.kv import KVService
    from raftkit.kvcluster import KVCluster

    class Mine(KVService):
        pass
    with pytest.raises(ValueError, match="runs in-process only"):
        KVCluster(3, isolation="process", service_class=Mine)


def _hostile_clerk(clerk_class, seed=1):
    """A KV cluster whose clerk class is ``clerk_class`` (in its process):
    what one put and one get end with."""
    from raftkit.isolation.kvprocess import hosted_kv, kv_options, kv_spec
    from raftkit.kv import KVStore
    from raftkit.kvcluster import KVCluster
    store, clerk = hosted_kv(kv_spec(KVStore, clerk_class))
    kv = KVCluster(3, seed=seed, clerk_timeout=2.0, **kv_options(store.raftkit_spec))
    try:
        c = clerk(kv, 0, timeout=2.0)
        kv.clerks.append(c)
        kv.check_one_leader()
        out = []
        kv.start_client(lambda c: out.extend([c.request("put", "a", "1"), c.request("get", "a", None)]), c)
        kv.run_for(5.0)
        return out, kv.history
    finally:
        kv.stop()


@pytest.mark.parametrize("cls,words", [
    (hostile.ForgingClerk, "which no server answered it (servers answered this operation: nothing)"),
    (hostile.AnswersWithAnotherKey, "which no server answered it"),
    (hostile.CallsRaft, "a clerk calls servers' kv_request only"),
    (hostile.ExitsOnRequest, "client 0's process exited with code 3"),
    (hostile.SavesState, "client 0's process broke the protocol: a clerk saves nothing"),
    (hostile.AppliesEntries, "client 0's process broke the protocol: a clerk applies nothing"),
    (hostile.PostsApplied, "client 0's process broke the protocol: a clerk saves nothing, applies nothing"),
])
def test_a_clerk_cannot_return_what_no_server_answered(cls, words):
    """The result a clerk returns is recorded only if a server gave it, for
    that operation, during that request: a made-up history fails the run."""
    with pytest.raises(NodeError) as info:
        _hostile_clerk(cls)
    assert words in str(info.value)


def test_the_honest_kits_clerk_in_its_process_gets_its_answers_recorded():
    from raftkit.kv import Clerk
    out, _ = _hostile_clerk(Clerk)
    assert out == [None, "1"]


@pytest.mark.parametrize("isolated", [False, True])
def test_a_clerk_that_gives_up_at_once_earns_no_maybe_applied(isolated):
    """ClerkTimeout ("maybe applied") makes any history linearizable; the
    grader takes it only from a clerk that kept trying for its timeout."""
    from raftkit.grading import battery
    from raftkit.isolation.kvprocess import hosted_kv, kv_spec
    from raftkit.kv import KVStore
    impl = battery.KVImpl(*hosted_kv(kv_spec(KVStore, hostile.GivesUpAtOnce))) if isolated else \
        battery.KVImpl(KVStore, hostile.GivesUpAtOnce)
    ctx = ScenarioContext()
    try:
        with pytest.raises(NodeError, match=r"gave up \(ClerkTimeout\) after 0.000 s, before its timeout"):
            battery.EXERCISES[7].scenario("duplicated requests")(ctx, impl, 1)
    finally:
        ctx.stop()


def test_a_bare_store_lives_in_its_own_process():
    from raftkit.isolation.kvprocess import hosted_kv, kv_spec
    from raftkit.kv import Clerk, KVOp, KVStore
    store_class, _ = hosted_kv(kv_spec(KVStore, Clerk))
    store = store_class()
    assert store.apply(KVOp(1, 1, "append", "x", "a")) == "a"
    copy = store_class()
    copy.load(store.dump())
    assert copy.data == {"x": "a"} and copy.last == {1: (1, "a")}
    pid = store._twin.pid
    with pytest.raises(AttributeError, match="another process"):
        store.data = {}
    store.close()
    assert not os.path.exists(f"/proc/{pid}")


def test_a_server_that_answers_without_the_log_is_caught():
    """Its answers are right for one clerk, and would pass: they are
    checked against the log the servers agreed on, replayed here."""
    from raftkit.grading import battery
    from raftkit.isolation.kvprocess import hosted_kv, kv_spec
    from raftkit.kv import Clerk
    impl = battery.KVImpl(*hosted_kv(kv_spec(hostile.AnswersWithoutRaft, Clerk)))
    ctx = ScenarioContext()
    try:
        with pytest.raises(battery.Failed, match="applied does not hold it at all"):
            battery.EXERCISES[7].scenario("basic operations")(ctx, impl, 1)
    finally:
        ctx.stop()


def test_a_store_that_loops_is_reported_as_the_store():
    from raftkit.isolation.kvprocess import hosted_kv, kv_spec
    from raftkit.kv import Clerk, KVOp
    store_class, _ = hosted_kv(kv_spec(hostile.LoopsOnApply, Clerk))
    store_class.timeout = 1.0
    store = store_class()
    with pytest.raises(DeadlockError) as info:
        store.apply(KVOp(1, 1, "get", "x"))
    assert str(info.value).startswith("the store ran for 1.0 s of wall time")
    # where it loops, with its line (the stack is sampled: either line of the loop)
    assert "in apply\n    while True:" in str(info.value) or "in apply\n    pass" in str(info.value)


def test_a_crash_while_a_request_waits_in_a_server_ends_that_request_as_in_process():
    """Exercise 7's crashes on seed 202: a server is crashed while a clerk's
    kv_request waits in it for its entry. In one process that handler goes
    on until its wait ends, and its reply is lost with the node; isolated,
    the caller's twin waits the same and never writes to the dead process
    (whose descriptor number the restarted node's socket may have taken)."""
    from raftkit.grading import battery
    from raftkit.grading.battery import KVImpl
    from raftkit.isolation.kvprocess import hosted_kv, kv_spec
    from raftkit.kv import Clerk, KVStore
    sc = battery.EXERCISES[7].scenario("crashes and snapshots")
    runs = []
    for impl in (KVImpl(KVStore, Clerk), KVImpl(*hosted_kv(kv_spec(KVStore, Clerk)))):
        ctx = ScenarioContext()
        sc(ctx, impl, 202)
        runs.append([c.trace_digest() for c in ctx.clusters])
        ctx.stop()
    assert runs[0] == runs[1] and runs[0]


def test_the_students_view_of_the_kit_comes_compiled(tmp_path):
    """Grading processes write no bytecode, so the kit's copy that node
    processes import carries its own, valid for every module, the stubbed
    ones included: no node process compiles the kit."""
    import importlib.util
    import struct

    from raftkit.grading import EXERCISES
    from raftkit.grading.kitview import build_student_kit
    kit = build_student_kit(EXERCISES[2], str(tmp_path))
    sources = [os.path.join(d, f) for d, _, files in os.walk(kit) for f in files if f.endswith(".py")]
    assert len(sources) > 40
    for source in sources:
        with open(importlib.util.cache_from_source(source), "rb") as f:
            magic, flags, mtime, size = struct.unpack("<4sIII", f.read(16))
        st = os.stat(source)
        assert (magic, flags, mtime, size) == (importlib.util.MAGIC_NUMBER, 0, int(st.st_mtime) & 0xFFFFFFFF,
                                               st.st_size & 0xFFFFFFFF), source
    with open(os.path.join(kit, "raft.py")) as f:
        assert "is not available while exercise 2 is graded" in f.read()


def test_exercise_7s_view_of_the_kit_lacks_the_reference_store_and_clerk(tmp_path):
    """What node processes import while exercise 7 is graded: KVStore's
    apply/dump/load and Clerk.request raise; the KV server and the rest of
    the clerk are the kit's."""
    import subprocess
    import sys

    from raftkit.grading import EXERCISES
    from raftkit.grading.kitview import build_student_kit
    kit = build_student_kit(EXERCISES[7], str(tmp_path))
    probe = """
from raftkit.kv import Clerk, KVOp, KVService, KVStore
for call in (lambda: KVStore().apply(KVOp(1, 1, "get", "x")), lambda: KVStore().dump(), lambda: KVStore().load(b""),
             lambda: Clerk.request(None, "get", "x", None)):
    try:
        call()
    except NotImplementedError as e:
        print(e)
print(KVService(0).store.data, callable(Clerk.get))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(kit)), cwd=str(tmp_path))
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert [line.split(" is not")[0] for line in lines[:4]] == [
        "the kit's own KVStore.apply", "the kit's own KVStore.dump", "the kit's own KVStore.load",
        "the kit's own Clerk.request"]
    assert all(line.endswith("while exercise 7 is graded: write it yourself") for line in lines[:4])
    assert lines[4] == "{} True"


def test_predicted_frames_that_came_are_taken_at_once_and_only_if_they_are_those():
    """``Reader.take_predicted``: of the frames predicted, those that have
    all arrived are compared in one go; a frame not yet complete, or any
    difference, leaves everything for the frame-by-frame reading."""
    from raftkit.isolation import wire
    frames = [wire.frame(("post", 1, "emit", ("x", None, str(k)))) for k in range(4)]
    r, w = os.pipe()
    try:
        reader = wire.Reader(r)
        os.write(w, b"".join(frames[:2]) + frames[2][:5])  # two whole frames and the start of a third
        reader.read_ready()
        assert reader.take_predicted(frames) == 2 and reader.buf == frames[2][:5]
        assert reader.take_predicted(frames, 2) == 2  # the third has not all come
        os.write(w, frames[2][5:] + wire.frame(("post", 1, "emit", ("x", None, "other"))))
        reader.read_ready()
        assert reader.take_predicted(frames, 2) == 2  # the fourth differs: nothing is taken
        assert reader.take() == frames[2][wire.HEADER:]
        assert reader.take_predicted(frames, 3) == 3 and wire.safe_loads(reader.take())[3][2] == "other"
    finally:
        os.close(r)
        os.close(w)
