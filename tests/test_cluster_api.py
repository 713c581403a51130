"""The Cluster API: arguments, observation, white-box handler calls, persistence rules."""

import _thread
import dataclasses
import pickle
import re
import signal
import threading

import pytest

import raftkit
from raftkit import AppendEntriesArgs, ApplyMsg, CheckFailed, Config, LogEntry, RequestVoteArgs
from raftkit.kvcluster import KVCluster


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), ValueError, "n must be between 1 and 15"),
    (dict(n=16), ValueError, "n must be between 1 and 15"),
    (dict(n="3"), TypeError, "n must be an int"),
    (dict(n=3, seed=1.5), TypeError, "seed must be an int"),
    (dict(n=3, clock="fast"), ValueError, 'clock must be "virtual" or "real"'),
    (dict(n=3, node_class=int), TypeError, "subclass of raftkit.ConsensusModule"),
    (dict(n=3, snapshot_interval=0), ValueError, "snapshot_interval"),
    (dict(n=3, config={"heartbeat_interval": 1}), TypeError, "raftkit.Config"),
    (dict(n=3, clock="real", speed=-1), ValueError, "speed"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    """Wrong arguments raise at once with a message saying what was expected."""
    n = kwargs.pop("n")
    with pytest.raises(error, match=match):
        raftkit.Cluster(n, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(election_timeout=(0.3, 0.1)), "election_timeout"),
    (dict(election_timeout=0.2), "election_timeout"),
    (dict(heartbeat_interval=0), "heartbeat_interval"),
    (dict(ticker_interval=-1), "ticker_interval"),
    (dict(rpc_delay=(0.01,)), "rpc_delay"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Config(**kwargs)


def test_bad_call_arguments():
    """Every call checks its arguments."""
    with raftkit.Cluster(3, seed=1) as c:
        with pytest.raises(ValueError, match="node must be between 0 and 2"):
            c.crash(3)
        with pytest.raises(TypeError, match="node must be an int"):
            c.disconnect("1")
        with pytest.raises(TypeError, match="node must be an int"):
            c.restart(True)
        with pytest.raises(ValueError, match="dt"):
            c.run_for(-1)
        with pytest.raises(TypeError, match="callable"):
            c.run_until(True, 1)
        with pytest.raises(TypeError, match="picklable"):
            c.submit(lambda: 1)
        with pytest.raises(TypeError, match="True or False"):
            c.set_reliable("no")
        with pytest.raises(ValueError, match="more than one group"):
            c.partition([0, 1], [1, 2])
        with pytest.raises(ValueError, match="between 0 and 2"):
            c.partition([0, 7])
        with pytest.raises(TypeError, match="list of node ids"):
            c.partition(0, 1)
        with pytest.raises(TypeError, match="unknown network knob"):
            c.set_network(loss=0.5)
        with pytest.raises(ValueError, match="probability"):
            c.set_network(request_drop=2)
        with pytest.raises(ValueError, match="expected_servers"):
            c.one(1, 4)


def test_step_under_real_clock_is_an_error():
    with raftkit.Cluster(3, clock="real") as c:
        with pytest.raises(RuntimeError, match="step\\(\\) needs the virtual clock"):
            c.step()


def test_step_returns_events_and_none_when_idle():
    """step() runs one scheduler event and returns it; with every node
    crashed nothing is pending and it returns None."""
    with raftkit.Cluster(3, seed=2) as c:
        events = [c.step() for _ in range(30)]
        assert all(isinstance(e, raftkit.Event) for e in events)
        assert any(e.kind == "timeout" for e in events) or any(e.kind == "tick" for e in events)
        for i in range(3):
            c.crash(i)
        assert c.step() is None


def test_stopped_cluster_refuses_calls():
    c = raftkit.Cluster(3, seed=1)
    c.stop()
    c.stop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        c.run_for(1)
    assert c.clock.threads() == []


def test_submit_and_state_queries():
    """submit on a non-leader or a crashed node says so; node=None finds the leader."""
    with raftkit.Cluster(3, seed=3) as c:
        leader = c.check_one_leader()
        follower = (leader + 1) % 3
        assert c.submit("x", node=follower)[2] is False
        index, term, ok = c.submit("y")
        assert ok and index == 1 and term == c.get_state(leader)[0]
        c.run_for(0.2)
        assert [m.command for m in c.applied(follower)] == ["y"]
        assert c.applied(follower)[0] == ApplyMsg(True, "y", 1)
        c.crash(leader)
        assert c.get_state(leader) == (term, False)
        assert c.submit("z", node=leader) == (-1, term, False)
        assert not c.is_alive(leader) and c.is_connected(leader)


def test_applied_is_per_incarnation():
    """A restarted node's applied() starts empty and replays from index 1."""
    with raftkit.Cluster(3, seed=4) as c:
        c.check_one_leader()
        for k in range(3):
            c.one(k, 3)
        c.restart(0)
        assert c.applied(0) == []
        c.run_for(1.0)
        assert [m.command_index for m in c.applied(0)] == [1, 2, 3]


def test_harness_checks_fail_readably():
    """A failed check raises CheckFailed naming what was expected and the seed."""
    with raftkit.Cluster(3, seed=5) as c:
        for i in range(3):
            c.crash(i)
        with pytest.raises(CheckFailed, match=r"expected one leader, got none \(seed=5"):
            c.check_one_leader()
        with pytest.raises(CheckFailed, match="failed to reach agreement"):
            c.one("nothing", 3)
        with pytest.raises(CheckFailed, match="only 0 decided for index 1"):
            c.wait(1, 1)


def test_vote_is_persisted_before_the_reply():
    """Figure 2: votedFor is on stable storage before RequestVote returns
    (handlers may be called directly while the cluster is frozen)."""
    with raftkit.Cluster(3, seed=6, config=Config(election_timeout=(5, 6))) as c:
        node = c.nodes[1]
        reply = node.request_vote(RequestVoteArgs(term=7, candidate_id=2, last_log_index=0, last_log_term=0))
        assert reply.vote_granted and reply.term == 7
        restored = raftkit.ConsensusModule(1, [0, 2], clock=c.clock, bus=c.bus,
                                           storage=c._storages[1].reopen(), apply=lambda m: None)
        assert (restored.current_term, restored.voted_for) == (7, 2)
        again = node.request_vote(RequestVoteArgs(term=7, candidate_id=0, last_log_index=5, last_log_term=7))
        assert not again.vote_granted  # one vote per term


def test_stale_append_entries_does_not_truncate():
    """A delayed AppendEntries whose entries already match must not cut the log."""
    with raftkit.Cluster(3, seed=7, config=Config(election_timeout=(5, 6))) as c:
        node = c.nodes[0]
        entries = [LogEntry(1, "a"), LogEntry(1, "b"), LogEntry(1, "c")]
        assert node.append_entries(AppendEntriesArgs(1, 1, 0, 0, entries, 0)).success
        stale = node.append_entries(AppendEntriesArgs(1, 1, 0, 0, entries[:1], 0))
        assert stale.success
        assert [e.command for e in node.log] == ["a", "b", "c"]
        conflict = node.append_entries(AppendEntriesArgs(2, 2, 1, 1, [LogEntry(2, "B")], 0))
        assert conflict.success and [e.command for e in node.log] == ["a", "B"]


def test_fast_backup_hint():
    """A failed consistency check returns the first index of the conflicting term."""
    with raftkit.Cluster(3, seed=8, config=Config(election_timeout=(5, 6))) as c:
        node = c.nodes[0]
        log = [LogEntry(1, 1), LogEntry(2, 2), LogEntry(2, 3), LogEntry(2, 4)]
        node.append_entries(AppendEntriesArgs(2, 1, 0, 0, log, 0))
        reply = node.append_entries(AppendEntriesArgs(3, 1, 4, 3, [], 0))
        assert (reply.success, reply.conflict_index, reply.conflict_term) == (False, 2, 2)
        reply = node.append_entries(AppendEntriesArgs(3, 1, 9, 3, [], 0))
        assert (reply.success, reply.conflict_index, reply.conflict_term) == (False, 5, 0)


def test_submit_coalesces_into_one_round():
    """Many submits at one instant share one fresh AppendEntries round, sent at once."""
    with raftkit.Cluster(3, seed=9) as c:
        leader = c.check_one_leader()
        c.run_for(0.001)
        sent_before = sum(1 for e in c.trace if e.kind == "send")
        for k in range(10):
            c.submit(k, node=leader)
        t = c.now
        c.run_for(0.02)   # less than a heartbeat interval
        sends = [e for e in c.trace if e.kind == "send"][sent_before:]
        with_entries = [e for e in sends if "entries=[0]" not in e.detail]
        assert len(with_entries) == 2, [str(e) for e in sends]  # one per follower, not one per submit
        assert all("entries=[10]" in e.detail and e.time == t for e in with_entries)


def test_snapshot_state_and_repr():
    """snapshot_state() is an immutable picture; repr is a stable small table."""
    with raftkit.Cluster(3, seed=10) as a, raftkit.Cluster(3, seed=10) as b:
        for c in (a, b):
            c.check_one_leader()
            c.submit("q")
            c.run_for(0.002)
        state = a.snapshot_state()
        assert len(state.nodes) == 3 and state.time == a.now
        assert any(m.method == "append_entries" for m in state.messages)
        with pytest.raises(dataclasses.FrozenInstanceError):
            state.nodes[0].term = 99
        assert repr(a) == repr(b)
        assert "Leader" in repr(a) and "node  state" in repr(a)


def test_single_node_cluster_commits():
    with raftkit.Cluster(1, seed=1) as c:
        assert c.check_one_leader() == 0
        assert c.one("solo", 1) == 1


def test_fifteen_nodes():
    with raftkit.Cluster(15, seed=1) as c:
        c.check_one_leader()
        assert c.one("many", 15) == 1


def test_commands_are_copied():
    """The caller's object is never shared with the nodes."""
    with raftkit.Cluster(3, seed=11) as c:
        c.check_one_leader()
        cmd = ["mutable"]
        index = c.one(cmd, 3)
        cmd.append("changed")
        assert c.n_committed(index)[1] == ["mutable"]


def test_raft_threads_never_print(capfd):
    """Node threads write to the trace, never to stdout or stderr."""
    with raftkit.Cluster(5, seed=12) as c:
        c.check_one_leader()
        c.set_reliable(False)
        for k in range(20):
            c.submit(k)
            c.run_for(0.1)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_persisted_size_counts_raft_state_only():
    with raftkit.Cluster(3, seed=13) as c:
        c.check_one_leader()
        before = c.persisted_size(0)
        c.one("x" * 1000, 3)
        assert c.persisted_size(0) >= before + 1000
        assert pickle.loads(c._storages[0].read_state()[:200])[0] >= 1  # header: the term


def test_incremental_log_encoding_equals_a_fresh_encoding():
    """persist() re-encodes only new entries; whatever the log edit (append,
    truncate, replace in the middle, trim the head, replace the list), the
    saved state must equal a fresh encoding of the whole log."""
    with raftkit.Cluster(1, seed=2) as c:
        c.run_for(1.0)
        node = c.nodes[0]
        term = node.current_term

        def saved_fresh():  # the format: one pickle of (term, command) per entry
            return b"".join(pickle.dumps((e.term, e.command), protocol=pickle.HIGHEST_PROTOCOL) for e in node.log)

        edits = [
            lambda log: log.extend(LogEntry(term, k) for k in range(10)),
            lambda log: log.append(LogEntry(term, "x" * 100)),
            lambda log: log.__delitem__(slice(7, None)),                       # truncate
            lambda log: log.__setitem__(3, LogEntry(term, "replaced")),        # replace in the middle
            lambda log: log.__setitem__(3, LogEntry(term, "replaced")),        # equal value, new object
            lambda log: log.__delitem__(slice(0, 2)),                          # trim the head
            lambda log: log.clear(),
            lambda log: log.extend(LogEntry(term, k) for k in range(5)),
        ]
        for edit in edits:
            edit(node.log)
            assert bytes(node._encoded_log()) == saved_fresh()
        node.log = [LogEntry(term, "new list")]
        assert bytes(node._encoded_log()) == saved_fresh()


def test_a_far_behind_follower_catches_up_in_capped_messages():
    """No AppendEntries carries more than ``max_entries`` entries: a
    follower that missed many gets them over several messages, and ends
    with the same log and applies them all in order."""
    with raftkit.Cluster(3, seed=3) as c:
        leader = c.check_one_leader()
        f = (leader + 1) % 3
        for node in c.nodes:
            node.max_entries = 7
        c.disconnect(f)
        for k in range(40):
            c.one(k, 2)
        c.connect(f)
        c.one("caught up", 3, retry=True)
        sizes = [int(re.search(r"entries=\[(\d+)\]", e.detail).group(1)) for e in c.trace
                 if e.kind == "send" and e.detail.startswith("AppendEntries")]
        assert max(sizes) == 7, f"largest AppendEntries: {max(sizes)} entries"
        assert [m.command for m in c.applied(f) if m.command_valid] == list(range(40)) + ["caught up"]
        assert c.nodes[f].log == c.nodes[leader].log


@pytest.fixture
def ctrl_c_handled():
    """Ctrl-C raises KeyboardInterrupt, as in a notebook's kernel, even where
    the tests were started in the background (a shell's background job
    inherits SIGINT ignored, and then ``interrupt_main`` does nothing)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_run_where_it_is(ctrl_c_handled):
    """Ctrl-C during run_for (a notebook's interrupt button) stops the
    cluster at an event boundary: nothing runs on in the background, the next
    run_for works and the cluster is consistent."""
    with raftkit.Cluster(3, seed=1) as c:
        c.check_one_leader()

        def interrupter():
            c.clock.sleep(5.0)
            _thread.interrupt_main()  # as the kernel does on "interrupt"

        c.clock.go(interrupter)
        with pytest.raises(KeyboardInterrupt):
            c.run_for(1000.0)
        assert c.clock.in_node_thread() is False and c.clock._current is None, "a node thread kept the baton"
        stopped = c.now
        assert 5.0 <= stopped < 1000.0
        c.run_for(1.0)
        assert c.now == stopped + 1.0
        c.check_one_leader()


@pytest.mark.parametrize("make", [
    lambda: raftkit.Cluster(5, seed=1),
    lambda: _kv_with_a_clerk(),
], ids=["Cluster", "KVCluster with a clerk"])
def test_a_dropped_cluster_does_not_keep_its_threads(make):
    """Re-running ``c = Cluster(...)`` in a notebook drops the old cluster
    without stop(): its parked threads end when the next cluster starts,
    instead of piling up (about 20 per cluster)."""
    def run_and_drop():
        c = make()
        c.run_for(1.0)
        return c.clock  # the clock alone does not keep the cluster
    clock = run_and_drop()
    assert clock.threads(), "a running cluster has parked threads"
    with raftkit.Cluster(3, seed=2) as other:
        assert clock.threads() == [], "the dropped cluster's threads are still there"
        other.check_one_leader()


def _kv_with_a_clerk():
    kv = KVCluster(3, seed=1)
    kv.put("x", "1")
    return kv


def test_a_cluster_in_use_is_not_stopped_by_another():
    with raftkit.Cluster(3, seed=1) as first:
        with raftkit.Cluster(3, seed=2):
            first.run_for(1.0)
            first.check_one_leader()


def test_a_clerk_whose_cluster_was_dropped_says_so():
    clerk = KVCluster(3, seed=1).clerk()
    with pytest.raises(RuntimeError, match="keep a reference to the KVCluster"):
        clerk.put("x", "1")


@pytest.mark.timeout(60)
def test_a_call_from_another_thread_waits_for_the_run():
    """A notebook cell calling the cluster while a playing widget runs it
    (another thread) waits for that run, instead of touching nodes whose
    code is running."""
    with raftkit.Cluster(3, seed=1) as c:
        c.check_one_leader()
        done = threading.Event()

        def cell():
            c.submit("x")
            done.set()

        with c.clock.driving():  # a run in progress in this thread
            other = threading.Thread(target=cell)
            other.start()
            assert not done.wait(0.2), "the call did not wait for the run to end"
        other.join()
        assert done.is_set()


@pytest.mark.timeout(120)
def test_cell_and_widget_threads_can_drive_one_cluster():
    """One thread runs the cluster (as a playing widget does) while another
    submits and crashes and restarts nodes: before calls took turns, a
    submit holding a node's lock while that node's thread yielded was
    reported as a DeadlockError, and run_for from a second thread failed."""
    with raftkit.Cluster(3, seed=1) as c:
        c.check_one_leader()
        errors = []

        def widget():
            try:
                for _ in range(200):
                    c.run_for(0.05)
            except Exception as e:  # reported below, with the main thread's
                errors.append(e)

        player = threading.Thread(target=widget)
        player.start()
        k = 0
        while player.is_alive():
            c.submit(k)
            k += 1
            if k % 500 == 0:
                c.restart(k // 500 % 3)
        player.join()
        assert errors == []
        c.one("after", 3, True)


def test_timeout_now_starts_an_election_at_the_next_tick_and_reruns():
    """timeout_now(i): a follower becomes candidate within one ticker
    interval; recorded, so a rerun does the same; leaders and crashed nodes
    are refused with a clear message."""
    with raftkit.Cluster(5, seed=1) as c:
        leader = c.check_one_leader()
        term = c.get_state(leader)[0]
        follower = (leader + 1) % 5
        c.timeout_now(follower)
        assert c.trace[-1].kind == "timeout_now" and c.trace[-1].node == follower
        start = c.now
        assert c.run_until(lambda c: c.nodes[follower].current_term > term, c.config.ticker_interval + 0.001)
        assert any(e.kind == "timeout" and e.node == follower and e.time >= start for e in c.trace)
        with pytest.raises(ValueError, match="leader"):
            c.timeout_now(c.check_one_leader())
        c.crash(0)
        with pytest.raises(ValueError, match="crashed"):
            c.timeout_now(0)
        with pytest.raises(ValueError, match="node must be between"):
            c.timeout_now(5)
        c.run_for(0.5)
        assert c.rerun().trace_digest() == c.trace_digest()


def test_drop_message_loses_it_and_reruns():
    """drop_message(id): the message leaves the air at once; its caller sees
    it lost (no deliver of it, a 'drop' event now); recorded, so a rerun does
    the same; an id not in flight is a ValueError."""
    with raftkit.Cluster(3, seed=1) as c:
        c.check_one_leader()
        c.run_for(0.02)
        while not any(m.phase == "request" for m in c.snapshot_state().messages):
            c.step()
        m = next(m for m in c.snapshot_state().messages if m.phase == "request")
        before = len(c.trace)
        c.drop_message(m.id)
        assert m.id not in {x.id for x in c.snapshot_state().messages}
        assert c.trace[before].kind == "drop" and "dropped by hand" in c.trace[before].detail
        c.run_for(0.05)
        delivered = [e for e in c.trace[before:] if e.kind == "deliver" and e.node == m.dst and e.peer == m.src
                     and e.detail == m.summary and e.time <= m.arrive]
        assert not delivered
        assert not c.bus.cancelled  # forgotten once its arrival time passed
        with pytest.raises(ValueError, match="no message"):
            c.drop_message(m.id)
        with pytest.raises(TypeError):
            c.drop_message("7")
        c.run_for(0.3)
        assert c.rerun().trace_digest() == c.trace_digest()
