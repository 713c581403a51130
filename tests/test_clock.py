"""The clock: deterministic hand-off, Go-like primitives, deadlock detection."""

import os
import threading
import time

import pytest

import raftkit
import raftkit.clock
from raftkit import DeadlockError, Killed, NodeError, RealClock, VirtualClock


@pytest.fixture(params=[False, True], ids=["threads", "greenlets"])
def clock(request):
    """Both kinds of virtual clock: tasks on OS threads, or on greenlets of one."""
    c = VirtualClock(watchdog=1.0, greenlets=request.param)
    yield c
    c.stop()


def test_threads_run_in_time_then_sequence_order(clock):
    """Wake-ups happen in (time, start order) order, and time jumps to each."""
    log = []

    def worker(name, dt, n):
        t = clock.ticker(dt)
        for _ in range(n):
            t.tick()
            log.append((round(clock.now(), 6), name))

    clock.go(worker, "a", 0.010, 3)
    clock.go(worker, "b", 0.015, 2)
    clock.go(worker, "c", 0.010, 3)
    clock.run(until=1.0)
    assert log == [(0.01, "a"), (0.01, "c"), (0.015, "b"), (0.02, "a"), (0.02, "c"),
                   (0.03, "b"), (0.03, "a"), (0.03, "c")]
    assert clock.now() == 1.0


def test_runs_next_names_the_tasks_that_run_right_after_this_one(clock):
    """What the scheduler will run next at this time, in order, while the
    test holds; the tasks started meanwhile come after them."""
    seen, ran = {}, []

    def spawner():
        clock.go(lambda: clock.sleep(1), name="later")  # (at once: the next in line)
        for name in ("a", "b", "c"):
            clock.go(lambda n=name: ran.append(n), name=name)
        seen["all"] = [t.name for t in clock.runs_next(lambda t: True, 8)]
        seen["two"] = [t.name for t in clock.runs_next(lambda t: True, 2)]
        seen["until later"] = [t.name for t in clock.runs_next(lambda t: t.name != "later", 8)]
        clock.go(lambda: ran.append("d"), name="d")
        clock.sleep(0)
        ran.append("spawner")

    clock.go(spawner, name="spawner")
    clock.run(until=2)
    assert seen == {"all": ["later", "a", "b", "c"], "two": ["later", "a"], "until later": []}
    assert ran == ["a", "b", "c", "d", "spawner"]


def test_runs_next_stops_where_the_run_stops(clock):
    """``run(max_events=3)``: the spawner and two more."""
    seen = {}

    def spawner():
        for name in ("a", "b", "c"):
            clock.go(lambda: None, name=name)
        seen["next"] = [t.name for t in clock.runs_next(lambda t: True, 8)]

    clock.go(spawner, name="spawner")
    clock.run(max_events=3)
    assert seen["next"] == ["a", "b"]


def test_only_one_thread_runs_at_a_time(clock):
    """Under the virtual clock two node threads never run at once."""
    running, overlaps = [0], []

    def busy(k):
        for _ in range(50):
            running[0] += 1
            if running[0] > 1:
                overlaps.append(k)
            time.sleep(0.0001)  # give a second thread every chance to run
            running[0] -= 1
            clock.sleep(0.001)

    for k in range(4):
        clock.go(busy, k)
    clock.run(until=1.0)
    assert overlaps == []


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two cores")
def test_run_gives_the_callers_cores_back(clock):
    """run() moves the calling thread onto the workers' core while it waits,
    and restores its own affinity afterwards, also when a node thread fails."""
    mine, driver = os.sched_getaffinity(0), threading.get_native_id()
    seen = []

    def node():
        seen.append((os.sched_getaffinity(0), os.sched_getaffinity(driver)))
        clock.sleep(0.01)
        raise ValueError("boom")

    clock.go(node)
    with pytest.raises(NodeError, match="boom"):
        clock.run(until=1.0)
    worker_cores, driver_cores = seen[0]
    assert len(worker_cores) == 1 and driver_cores == worker_cores
    assert os.sched_getaffinity(0) == mine


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="needs Linux scheduling policies")
def test_workers_do_not_preempt_each_other(clock):
    """Workers run SCHED_BATCH: a woken worker waits for the one handing it
    the baton to block (one context switch per hand-off, not three)."""
    policies = []
    clock.go(lambda: policies.append(os.sched_getscheduler(0)))
    clock.run(until=1.0)
    assert policies == [os.SCHED_BATCH]


def test_same_program_same_schedule():
    """Two clocks running the same program interleave identically."""
    def program():
        c = VirtualClock()
        log = []
        ch = c.channel()

        def producer(k):
            for i in range(5):
                c.sleep(0.001 * (k + 1))
                ch.send((k, i))

        def consumer():
            while True:
                v, ok = ch.recv(timeout=0.05)
                if not ok:
                    return
                log.append((c.now(), v))

        for k in range(3):
            c.go(producer, k)
        c.go(consumer)
        c.run(until=1)
        c.stop()
        return log

    first = program()
    assert len(first) == 15
    assert first == program()


def test_greenlets_run_every_task_on_one_thread():
    """greenlets=True: the tasks take turns on one OS thread (not the
    driver's), in the same order as on threads of their own; stop() ends it."""
    def program(greenlets):
        c = VirtualClock(greenlets=greenlets)
        log, idents = [], set()

        def worker(name, dt):
            for _ in range(3):
                c.sleep(dt)
                idents.add(threading.get_ident())
                log.append((c.now(), name))

        for k in range(4):
            c.go(worker, k, 0.001 * (k % 2 + 1))
        c.run(until=1)
        threads = c.threads()
        c.stop()
        assert c.threads() == []
        return log, idents, threads

    log, idents, threads = program(True)
    assert len(log) == 12 and log == program(False)[0]
    assert len(idents) == 1 and threading.get_ident() not in idents
    assert [t.ident for t in threads] == list(idents)


def _idle_then_woken(greenlets: bool, again: bool, step: bool):
    """A thread that sleeps 10 ms at a time until a flag is set at 47 ms,
    as a loop or with ``sleep_again``, beside another thread ticking at the
    same times. The log of wake-ups (the idle ones from ``again``, in the
    scheduler), the yields the scheduler saw, its event count, and what
    each call of ``run`` ran."""
    clock, log, yields, flag = VirtualClock(greenlets=greenlets), [], [], []
    clock.on_yield = lambda task: yields.append((round(clock.now(), 6), task.name))

    def idle():
        if flag:
            return None
        log.append((round(clock.now(), 6), "idle"))
        return 0.010

    def sleeper():
        if again:
            clock.sleep_again(0.010, idle)
        else:
            clock.sleep(0.010)
            while idle() is not None:
                clock.sleep(0.010)
        log.append((round(clock.now(), 6), "woken"))

    def ticker():
        t = clock.ticker(0.010)
        for _ in range(8):
            t.tick()
            log.append((round(clock.now(), 6), "tick"))

    def setter():
        clock.sleep(0.047)
        flag.append(True)

    for fn in (sleeper, ticker, setter):
        clock.go(fn, name=fn.__name__)
    steps = []
    try:
        while clock.next_time() is not None:
            steps.append(clock.run(max_events=1) if step else clock.run(until=1.0))
            steps.append((round(clock.now(), 6), len(log)))
        return log, yields, clock.events, steps
    finally:
        clock.stop()


@pytest.mark.parametrize("greenlets", [False, True], ids=["threads", "greenlets"])
@pytest.mark.parametrize("step", [False, True], ids=["run", "step by step"])
def test_sleep_again_takes_the_events_a_sleep_loop_would(greenlets, step):
    """The scheduler takes each idle wake-up of ``sleep_again`` itself: the
    same events, in the same order (ties included), the same yields seen by
    ``on_yield`` (the safety checks), the same count; one event per step."""
    looped = _idle_then_woken(greenlets, again=False, step=step)
    assert looped == _idle_then_woken(greenlets, again=True, step=step)
    log = looped[0]
    assert log.index((0.01, "idle")) < log.index((0.01, "tick"))  # a tie: the order the threads started in
    assert (0.05, "woken") in log and log.count((0.04, "idle")) == 1 and (0.05, "idle") not in log


@pytest.mark.parametrize("again", [False, True], ids=["loop", "sleep_again"])
def test_sleep_again_with_a_lock_held_raises_where_a_sleep_loop_would(again):
    """A guarded lock held (here by the caller of ``run``) while a thread
    waits in ``sleep_again``: its next idle wake-up runs in the thread, whose
    sleep raises the DeadlockError a sleep loop raises, at the same event."""
    clock, lock, wakes = VirtualClock(greenlets=True), threading.Lock(), []
    clock.guard_lock(lock, "the test's lock")

    def idle():
        wakes.append(round(clock.now(), 6))
        return 0.010

    def sleeper():
        if again:
            while True:
                clock.sleep_again(0.010, idle)
                idle()
        clock.sleep(0.010)
        while True:
            idle()
            clock.sleep(0.010)

    clock.go(sleeper, name="sleeper")
    try:
        clock.run(until=0.025)
        with lock, pytest.raises(DeadlockError, match="sleeper called sleep\\(\\) while the test's lock was held"):
            clock.run(until=1.0)
        assert wakes == [0.01, 0.02, 0.03] and clock.events == 4
    finally:
        clock.stop()


def test_step_runs_one_event(clock):
    """run(max_events=1) runs exactly one wake-up and does not advance time past it."""
    seen = []

    def sleeper():
        for _ in range(3):
            clock.sleep(0.5)
            seen.append(clock.now())

    clock.go(sleeper)
    assert clock.run(max_events=1) == 1   # the thread starts and sleeps
    assert seen == [] and clock.now() == 0
    assert clock.run(max_events=1) == 1
    assert seen == [0.5] and clock.now() == 0.5
    assert clock.next_time() == 1.0


def test_channel_capacity_send_blocks_until_received(clock):
    """A full bounded channel blocks the sender until a receiver takes a value."""
    ch = clock.channel(1)
    log = []

    def sender():
        for i in range(3):
            ch.send(i)
            log.append(("sent", i, clock.now()))

    def receiver():
        for _ in range(3):
            clock.sleep(0.1)
            v, ok = ch.recv()
            log.append(("got", v, clock.now()))

    clock.go(sender)
    clock.go(receiver)
    clock.run(until=1)
    assert [e[:2] for e in log] == [("sent", 0), ("got", 0), ("sent", 1), ("got", 1), ("sent", 2), ("got", 2)]
    assert ch.try_send("x") and not ch.try_send("y")


def test_has_room_tells_what_try_send_would_return(clock):
    """A full channel has no room; an empty one, or one a receiver waits
    on, has. Nothing is sent by asking."""
    ch = clock.channel(1)
    assert ch.has_room() and ch.try_send("x")
    assert not ch.has_room() and not ch.try_send("y")
    assert ch.recv() == ("x", True) and ch.has_room()
    ch.try_send("z")

    def waits(timeout):
        ch.recv()  # takes "z"
        ch.recv(timeout=timeout)

    clock.go(waits, 0.5)
    clock.run(until=0.1)
    assert ch.has_room()              # a receiver waits: a value would go to it
    clock.run(until=1)
    assert ch.has_room() and ch.try_send("w") and not ch.has_room()  # its wait timed out: the queue holds it


def test_recv_timeout(clock):
    """recv(timeout) returns (None, False) after exactly the timeout."""
    out = []

    def r():
        out.append((clock.channel().recv(timeout=0.25), clock.now()))

    clock.go(r)
    clock.run(until=1)
    assert out == [((None, False), 0.25)]


def test_kill_ends_an_owners_threads(clock):
    """kill(owner) makes that owner's threads raise Killed where they block."""
    a, b = object(), object()
    ended = []

    def loop(name):
        try:
            while True:
                clock.sleep(0.01)
        except Killed:
            ended.append(name)
            raise

    clock.go(loop, "a", owner=a)
    clock.go(loop, "b", owner=b)
    clock.run(until=0.1)
    clock.kill(a)
    assert ended == ["a"]
    assert [t.owner for t in clock.live_tasks()] == [b]
    clock.run(until=0.2)
    clock.stop()
    assert ended == ["a", "b"]
    assert clock.threads() == []


def test_real_clock_killed_thread_starts_no_more_threads():
    """A thread of a crashed node (killed, but not yet at a blocking call)
    that goes on to start a thread is ended there: nothing new runs for the
    dead node, and it is no error."""
    clock = RealClock()
    owner = object()
    killed, ended, started = threading.Event(), threading.Event(), threading.Event()

    def late_starter():
        try:
            assert killed.wait(5.0)
            clock.go(started.set)
        finally:
            ended.set()

    try:
        clock.go(late_starter, owner=owner)
        clock.kill(owner)
        killed.set()
        assert ended.wait(5.0), "the killed thread did not end"
        assert not started.is_set() and not [t for t in clock.threads() if t.name == "raftkit-set"], (
            "a killed thread started a new thread")
        assert clock.failure is None
    finally:
        clock.stop()


def test_blocking_call_outside_node_threads_is_an_error(clock):
    """The driver (a notebook cell) must not sleep on the virtual clock."""
    with pytest.raises(RuntimeError, match="run_for"):
        clock.sleep(1)
    with pytest.raises(RuntimeError, match="go\\(\\)"):
        clock.channel().recv()


def test_running_the_clock_from_a_node_thread_is_an_error(clock):
    """Only the driver runs the clock; a node thread that tries is told so."""
    clock.go(lambda: clock.run(until=1.0))
    with pytest.raises(NodeError, match="outside the cluster's threads"):
        clock.run(until=1.0)


def test_lock_held_across_sleep_is_caught_at_once(clock):
    """Holding a node lock across a blocking call deadlocks Go; here it is
    reported immediately with the offending line."""
    mu = threading.Lock()
    clock.guard_lock(mu, "node 0's lock self.mu")

    def bad():
        with mu:
            clock.sleep(0.01)   # the bug

    clock.go(bad, name="node 0: bad")
    with pytest.raises(DeadlockError) as err:
        clock.run(until=1)
    text = str(err.value)  # this message, not the watchdog's: caught at the call, not after a wait
    assert "node 0: bad called sleep() while node 0's lock self.mu was held" in text
    assert "clock.sleep(0.01)   # the bug" in text
    assert not mu.locked()  # the exception unwound the `with`


def test_returning_with_the_lock_held_is_caught(clock):
    """The Go seed's election timer returned without unlocking: caught when the thread ends."""
    mu = threading.Lock()
    clock.guard_lock(mu, "node 1's lock self.mu")

    def seed_bug():
        mu.acquire()
        return

    clock.go(seed_bug, name="node 1: run_election_timer")
    with pytest.raises(DeadlockError, match="returned while node 1's lock self.mu was still held"):
        clock.run(until=1)


@pytest.mark.timeout(30)  # the hang guard: the watchdog fires after 0.3 s, stop() never waits long
@pytest.mark.parametrize("greenlets", [False, True], ids=["threads", "greenlets"])
@pytest.mark.parametrize("kind", ["raw lock", "infinite loop", "raw event"])
def test_watchdog_reports_stuck_thread_with_stacks(kind, greenlets):
    """A thread that never yields becomes a DeadlockError with its stack
    (no hang), and stop() still returns."""
    clock = VirtualClock(watchdog=0.3, greenlets=greenlets)
    other = threading.Lock()
    other.acquire()
    stop = threading.Event()

    def stuck():
        if kind == "raw lock":
            other.acquire()           # STUCK-HERE
        elif kind == "infinite loop":
            while not stop.is_set():  # STUCK-HERE
                pass
        else:
            stop.wait()               # STUCK-HERE

    def bystander():
        while True:
            clock.sleep(0.01)

    clock.go(bystander, name="node 2: bystander")
    clock.go(stuck, name="node 1: stuck")
    with pytest.raises(DeadlockError) as err:
        clock.run(until=1)
    assert "ran for 0.3 s of wall time" in str(err.value)
    assert "node 1: stuck (holds the baton)" in err.value.stacks
    assert "STUCK-HERE" in err.value.stacks["node 1: stuck (holds the baton)"]
    assert "in bystander" in err.value.stacks["node 2: bystander"]  # a parked thread's stack too
    with pytest.raises(RuntimeError, match="deadlock"):
        clock.run(until=2)
    clock.stop()
    stop.set()
    other.release()


def test_exception_in_node_thread_is_reported(clock):
    """A crash in node code surfaces in the driver as NodeError with the traceback."""
    def boom():
        clock.sleep(0.1)
        raise KeyError("missing")

    clock.go(boom, name="node 3: boom")
    with pytest.raises(NodeError, match="node 3: boom raised KeyError") as err:
        clock.run(until=1)
    assert "raise KeyError" in str(err.value)


def test_bad_arguments():
    """Wrong arguments say what was expected."""
    with pytest.raises(ValueError, match="watchdog"):
        VirtualClock(watchdog=0)
    with pytest.raises(ValueError, match="speed"):
        RealClock(speed=0)
    c = VirtualClock()
    with pytest.raises(ValueError, match="capacity"):
        c.channel(0)
    with pytest.raises(ValueError, match="interval"):
        c.ticker(0)
    with pytest.raises(TypeError, match="callable"):
        c.go(42)
    c.stop()


def test_real_clock_threads_run_and_stop():
    """The real clock runs threads freely and stop() ends them all."""
    c = RealClock(speed=10)
    ticks = []

    def ticker():
        t = c.ticker(0.05)
        while True:
            t.tick()
            ticks.append(c.now())

    def waiter():
        c.channel().recv()

    c.go(ticker)
    c.go(waiter)
    deadline = time.monotonic() + 5
    while len(ticks) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(ticks) >= 5
    c.stop()
    assert c.threads() == []


class ThreadBomb(raftkit.ConsensusModule):
    """Starts threads that never end, one every 0.1 ms, from its own thread;
    with ``swallow`` it also catches whatever ``go`` raises."""

    swallow = False

    def start(self):
        super().start()
        self.go(self.bomb)

    def bomb(self):
        while True:
            try:
                self.go(self.wait_forever)
            except Exception:
                if not self.swallow:
                    raise
            self.clock.sleep(0.0001)

    def wait_forever(self):
        self.clock.sleep(1e6)


class SwallowingBomb(ThreadBomb):
    swallow = True


def _bomb_failure(node_class, seed):
    with raftkit.Cluster(3, seed=seed, node_class=node_class) as c:
        with pytest.raises(raftkit.NodeError) as info:
            c.run_for(5.0)
        return str(info.value), c.now, c.clock.events


@pytest.mark.parametrize("node_class", [ThreadBomb, SwallowingBomb])
def test_a_thread_bomb_is_a_clear_error_at_the_same_event(node_class):
    """A node that starts threads without bound stops at MAX_THREADS_PER_NODE
    live threads with a NodeError naming the node and the function those
    threads run; catching the error in node code does not hide it; the same
    seed fails at the same event every run."""
    message, when, events = _bomb_failure(node_class, seed=5)
    limit = raftkit.clock.MAX_THREADS_PER_NODE
    assert f"has {limit} live threads" in message and "wait_forever" in message, message
    assert message.startswith("node "), message
    assert (message, when, events) == _bomb_failure(node_class, seed=5)


def test_thread_limit_is_per_node():
    """Ordinary clusters stay far below the limit, and a bomb on one node
    is reported for that node."""
    class BombOnTwo(ThreadBomb):
        def start(self):
            raftkit.ConsensusModule.start(self)
            if self.id == 2:
                self.go(self.bomb)

    message, _, _ = _bomb_failure(BombOnTwo, seed=1)
    assert message.startswith("node 2 has"), message


def test_raftkit_cpu_gives_a_clock_the_core_it_names(monkeypatch):
    """A grader running clocks side by side gives each a core of its own
    (RAFTKIT_CPU); without it the core depends on the process id."""
    monkeypatch.setattr(raftkit.clock.os, "sched_getaffinity", lambda pid: {4, 6}, raising=False)
    for slot, core in (("0", 4), ("1", 6), ("2", 4)):
        monkeypatch.setenv("RAFTKIT_CPU", slot)
        assert raftkit.clock._pick_cpu() == core
    monkeypatch.setenv("RAFTKIT_CPU", "not a number")
    assert raftkit.clock._pick_cpu() in (4, 6)
    monkeypatch.setattr(raftkit.clock.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setenv("RAFTKIT_CPU", "1")
    assert raftkit.clock._pick_cpu() is None  # one core: nothing to choose


def test_a_clock_spares_the_next_core_unless_raftkit_cpu_gives_it_one(monkeypatch):
    """The core a predicting cluster's node processes run ahead on
    (raftkit.isolation): the next one; none where a runner gave the clock
    a core of its own, or where there is only one."""
    spare = raftkit.clock._spare_cpu
    monkeypatch.setattr(raftkit.clock.os, "sched_getaffinity", lambda pid: {4, 6, 9}, raising=False)
    monkeypatch.delenv("RAFTKIT_CPU", raising=False)
    assert [spare(cpu) for cpu in (4, 6, 9, None)] == [6, 9, 4, None]
    monkeypatch.setenv("RAFTKIT_CPU", "1")
    assert spare(6) is None
    monkeypatch.setenv("RAFTKIT_CPU", "not a number")
    assert spare(6) == 9
    monkeypatch.setattr(raftkit.clock.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.delenv("RAFTKIT_CPU")
    assert spare(3) is None
