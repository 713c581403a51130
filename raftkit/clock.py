"""Time and scheduling: the Go-like primitives node code runs on.

Theory of operation
-------------------
Node code is written as in Go: it starts threads with ``clock.go(fn, *args)``,
waits with ``clock.sleep(dt)``, a ``Ticker`` or a ``Channel``, and guards its
state with a plain ``threading.Lock``. Two clocks implement these primitives:

* ``VirtualClock`` runs every node thread on a real OS thread, but only one
  of them at a time. The running thread holds the *baton* until it blocks in
  one of the primitives above; it then hands the baton straight to the next
  ready thread, chosen in (time, sequence) order from a heap. Simulated time
  jumps to that thread's wake-up time. Nothing else decides the order, so the
  same seed and the same calls replay the same run, bit for bit, on any
  machine. The caller of ``run()`` (the "driver", usually the notebook or
  test) gets the baton back when the time limit or event budget is reached.

  With ``greenlets=True`` the node threads are greenlets of one runner
  thread instead (a hand-off is a greenlet switch, no system call): for
  tasks that only run the kit's code, such as the trusted twins of node
  processes (``isolation/process.py``).

  A watchdog in the driver notices a thread that keeps the baton too long
  (an infinite loop, a raw ``threading`` wait, a lock that will never be
  released) and raises ``DeadlockError`` with every thread's stack. A thread
  that blocks while holding a node lock (``guard_lock``) is caught at once,
  naming the line.

* ``RealClock`` maps the same primitives onto free-running threads,
  ``time.sleep`` and condition variables, optionally slowed down by
  ``speed``.

Killing a node (``kill(owner)``) makes each of its threads raise ``Killed``
from the primitive it is blocked in, so crashed nodes really stop.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from .errors import DeadlockError, NodeError, RaftkitError

__all__ = ["Clock", "VirtualClock", "RealClock", "Ticker", "Killed"]

_INF = float("inf")
TURN_WAIT = 60.0  # wall seconds a call waits while another thread runs the cluster
MAX_THREADS_PER_NODE = 1_000  # live threads one owner (a node, a clerk) may have at once
_LOCKED = type(threading.Lock()).locked
_NOTHING = object()
_NO_OP = contextlib.nullcontext()  # reusable: every real-clock call enters it


class Killed(BaseException):
    """Raised inside a node thread whose node crashed or whose clock stopped.

    It derives from BaseException so that ``except Exception`` in node code
    does not swallow it.
    """


class Ticker:
    """Ticks every ``interval`` seconds, like Go's ``time.NewTicker``.

    ``tick()`` blocks until the next tick; ticks that were missed (real
    clock, busy thread) are dropped, as in Go.
    """

    def __init__(self, clock: Clock, interval: float):
        if not interval > 0:
            raise ValueError(f"Ticker interval must be > 0 seconds, got {interval!r}")
        self.clock, self.interval = clock, interval
        self._next = clock.now() + interval

    def tick(self) -> None:
        now = self.clock.now()
        self._next = next_tick(now, self._next, self.interval)
        self.clock.sleep(self._next - now, label="tick")
        self._next += self.interval


def next_tick(now: float, due: float, interval: float) -> float:
    """When a ticker due at ``due`` ticks, at ``now``: ticks that were
    missed are dropped, as in Go."""
    if due <= now:
        due += ((now - due) // interval + 1) * interval
    return due


class Clock:
    """The interface node code programs against."""

    virtual: bool

    def now(self) -> float:
        raise NotImplementedError

    def in_node_thread(self) -> bool:
        """True when called from a thread started with ``go``."""
        raise NotImplementedError

    def go(self, fn: Callable, *args, owner: Any = None, name: str | None = None):
        """Start ``fn(*args)`` on a new node thread (Go's ``go`` statement)."""
        raise NotImplementedError

    def sleep(self, dt: float, label: str = "sleep") -> None:
        raise NotImplementedError

    def sleep_until(self, t: float, label: str = "sleep") -> None:
        """Sleep until clock time ``t``. A time already past returns at once,
        as Go's ``time.Sleep`` does for d <= 0: under the real clock a thread
        may be scheduled after the deadline it computed."""
        self.sleep(max(0.0, t - self.now()), label)

    def ticker(self, interval: float) -> Ticker:
        return Ticker(self, interval)

    def channel(self, capacity: int | None = None):
        """A FIFO channel; ``capacity=None`` means unbounded."""
        raise NotImplementedError

    def kill(self, owner: Any) -> None:
        """Stop every thread started for ``owner``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every thread. Never hangs."""
        raise NotImplementedError

    def driving(self):
        """A context in which the calling thread drives the cluster alone
        (see ``VirtualClock.driving``); under the real clock, no-op."""
        return _NO_OP

    def guard_lock(self, lock, name: str) -> None:
        """Register a node lock that must never be held across a blocking call."""

    def unguard_lock(self, lock) -> None:
        """Forget a lock registered with ``guard_lock``."""


def _check_capacity(capacity):
    if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
        raise ValueError(f"channel capacity must be None (unbounded) or an int >= 1, got {capacity!r}")


def _check_delay(dt):
    if not isinstance(dt, (int, float)) or dt != dt or dt < 0:
        raise ValueError(f"expected a duration >= 0 seconds, got {dt!r}")


def _thread_bomb(owner_tasks: list, starter: str) -> NodeError:
    """The error for an owner that reached ``MAX_THREADS_PER_NODE`` live threads:
    it names the owner and the function most of those threads run."""
    names = collections.Counter(t.name for t in owner_tasks)
    (top, count), = names.most_common(1)
    node, _, fn = top.rpartition(": ")
    return NodeError(
        f"{node or 'a node'} has {len(owner_tasks)} live threads, the most one node may have "
        f"(raftkit.clock.MAX_THREADS_PER_NODE): {count} of them run {fn}, and {starter} was starting "
        f"another. A thread per RPC must end: does a loop start RPCs that never return, or retry "
        f"without end (say, a leader that never steps down on a higher term)?")


def _task_stack(thread: threading.Thread | None, frame=None) -> str:
    """The stack of ``thread`` (running), or from ``frame`` (a parked greenlet)."""
    frame = frame or (sys._current_frames().get(thread.ident) if thread else None)
    if frame is None:
        return "(not running)"
    frames = [f for f in traceback.extract_stack(frame) if f.filename != __file__]
    return "".join(traceback.format_list(frames)) or "(inside raftkit.clock)"


# --------------------------------------------------------------------------
# Virtual clock
# --------------------------------------------------------------------------

class _Task:
    __slots__ = ("id", "fn", "args", "owner", "name", "worker", "token", "killed", "value", "again")

    def __init__(self, id, fn, args, owner, name):
        self.id, self.fn, self.args, self.owner, self.name = id, fn, args, owner, name
        self.worker = None
        self.token = 0          # matches the heap / channel entry that may wake it
        self.killed = False
        self.value = _NOTHING   # a value handed over by a channel
        self.again = None       # see VirtualClock.sleep_again

    def __repr__(self):
        return f"<thread {self.name}>"


class _Worker:
    """An OS thread, or a greenlet of the runner thread (``greenlets=True``),
    that runs tasks one after another (a goroutine pool)."""

    __slots__ = ("sem", "task", "thread", "ident", "glet")

    def __init__(self):
        self.sem = threading.Lock()
        self.sem.acquire()
        self.task = None
        self.thread = None
        self.ident = None
        self.glet = None


class _Runner:
    """The one OS thread whose greenlets run every task of a
    ``VirtualClock(greenlets=True)``: a hand-off between two of them is a
    greenlet switch, no system call. Its main greenlet (the hub) waits for
    the driver to hand it a worker; ``next`` is the worker a greenlet that
    parks switches to (None: the baton went to the driver)."""

    __slots__ = ("thread", "ident", "sem", "hub", "handoff", "next", "getcurrent", "greenlet")

    def __init__(self):
        import greenlet  # only clocks that ask for greenlets load it
        self.greenlet, self.getcurrent = greenlet.greenlet, greenlet.getcurrent
        self.sem = threading.Lock()
        self.sem.acquire()
        self.thread = self.ident = self.hub = self.handoff = self.next = None


class VirtualClock(Clock):
    """Deterministic clock: one node thread runs at a time, time is simulated.

    ``watchdog`` is the wall time (seconds) a thread may keep running
    without reaching a primitive before ``DeadlockError`` is raised.
    ``on_yield(task)`` is called by each thread as it hands the baton on.
    ``greenlets=True`` runs the tasks as greenlets of one OS thread instead
    of an OS thread each: a hand-off costs no system call, but a task that
    blocks outside the kit's primitives (a raw lock, ``time.sleep``) stops
    them all, so it is for tasks that run only the kit's own code (the
    trusted twins of node processes, see ``isolation/process.py``). The
    watchdog still reports such a task, with every task's stack.
    """

    virtual = True

    def __init__(self, *, watchdog: float = 5.0, on_yield: Callable | None = None, greenlets: bool = False):
        if not watchdog > 0:
            raise ValueError(f"watchdog must be > 0 seconds, got {watchdog!r}")
        self.watchdog = watchdog
        self.on_yield = on_yield
        self._now = 0.0
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._heap: list = []
        self._live: dict[int, _Task] = {}
        self._owned: collections.Counter = collections.Counter()  # live tasks per id(owner)
        self._idle: list[_Worker] = []
        self._workers: list[_Worker] = []
        self._driver = threading.Lock()
        self._driver.acquire()
        self._current: _Task | None = None
        self._limit = _INF
        self._budget = 0
        self._unwinding = False
        self._switches = 0
        self.events = 0              # scheduler events run so far
        self.last_task: _Task | None = None
        self._failure: BaseException | None = None
        self._broken: BaseException | None = None
        self._stopped = False
        self._locks: dict[int, tuple[Any, str]] = {}
        self._guarded: list = []
        self._cpu = _pick_cpu()
        self._spare_cpu = _spare_cpu(self._cpu)
        self._turn = threading.RLock()  # the driver's seat, see driving()
        self._runner = _Runner() if greenlets else None

    # -- the primitives ----------------------------------------------------
    def now(self) -> float:
        return self._now

    def in_node_thread(self) -> bool:
        task = self._current
        worker = task.worker if task is not None else None  # read once: another thread may be dispatching
        return worker is not None and worker.ident == threading.get_ident()

    def go(self, fn, *args, owner=None, name=None):
        if not self.in_node_thread():
            with self.driving():  # not while another thread runs the clock
                return self._go(fn, args, owner, name)
        return self._go(fn, args, owner, name)

    def _go(self, fn, args, owner, name):
        if not callable(fn):
            raise TypeError(f"go() expects a callable, got {fn!r}")
        if self._stopped:
            raise RuntimeError("this clock is stopped")
        if owner is None and self._current is not None:
            owner = self._current.owner
        if owner is not None:
            if self._owned[id(owner)] >= MAX_THREADS_PER_NODE:
                mine = [t for t in self._live.values() if t.owner is owner]
                error = _thread_bomb(mine, self._current.name if self._current else "the caller")
                self._failure = self._failure or error  # kept even if node code catches it
                raise error
            self._owned[id(owner)] += 1
        task = _Task(next(self._ids), fn, args, owner, name or getattr(fn, "__name__", "thread"))
        self._live[task.id] = task
        self._schedule(task, self._now)
        return task

    def sleep(self, dt, label="sleep"):
        if not dt >= 0:
            _check_delay(dt)
        task = self._me("sleep")
        self._schedule(task, self._now + dt)
        self._yield(task)

    def channel(self, capacity=None):
        _check_capacity(capacity)
        return _VirtualChannel(self, capacity)

    def sleep_again(self, dt, again) -> None:
        """``sleep(dt)``; then, at each wake, the scheduler first calls
        ``again()``: while it returns a delay (the thread would only sleep
        again, as an isolated node's idle tick), the scheduler counts the
        event, sleeps the thread that long again and goes on, without
        switching to it. This returns once ``again()`` returns None, or when
        the thread must run its wake itself (killed, or a guarded lock held:
        its next sleep raises); the caller then goes on as its loop would.
        The same events, in the same order, as sleeping in a loop."""
        task = self._me("sleep")
        task.again = again
        try:
            self._schedule(task, self._now + dt)
            self._yield(task)
        finally:
            task.again = None

    def guard_lock(self, lock, name):
        self._locks[id(lock)] = (lock, name)
        self._guarded = [lock for lock, _ in self._locks.values()]

    def unguard_lock(self, lock):
        self._locks.pop(id(lock), None)
        self._guarded = [lock for lock, _ in self._locks.values()]

    # -- driving -----------------------------------------------------------
    @contextlib.contextmanager
    def driving(self):
        """Hold the driver's seat. Node code runs only inside ``run()``, so
        while one thread runs the clock (a playing widget) another (a notebook
        cell) must not touch the nodes or the scheduler: it waits for the run
        to end, at most ``TURN_WAIT`` seconds. Node threads go straight
        through (their driver holds the seat for them)."""
        if self.in_node_thread():
            yield
            return
        if not self._turn.acquire(timeout=TURN_WAIT):
            raise RuntimeError(f"another thread has been running this cluster for {TURN_WAIT:.0f} s "
                               "(a playing widget?): pause it, then try again")
        try:
            yield
        finally:
            self._turn.release()

    def run(self, until: float | None = None, max_events: int | None = None) -> int:
        """Run events up to simulated time ``until`` (inclusive) or until
        ``max_events`` events ran. Returns the number of events run."""
        if self._is_worker():
            raise RuntimeError("run() must be called from outside the cluster's threads")
        with self.driving():
            return self._run(until, max_events)

    def _run(self, until, max_events):
        self._check_usable()
        self._limit = _INF if until is None else until
        self._budget = sys.maxsize if max_events is None else max_events
        before = self.events
        with _on_core(self._cpu):
            self._dispatch(None)
            try:
                self._wait_for_baton()
            except KeyboardInterrupt:  # Ctrl-C in a notebook: stop at an event boundary
                self._take_baton_back()
                raise
        if self._failure is not None:
            raise self._failure
        if until is not None and self._now < until:
            following = self.next_time()
            if following is None or following > until:
                self._now = until  # nothing left before `until`: time moves on to it
        return self.events - before

    def next_time(self) -> float | None:
        """Time of the next event, or None if nothing is scheduled."""
        while self._heap and self._heap[0][2].token != self._heap[0][1]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def runs_freely(self) -> bool:
        """Whether this run goes on until a time (not a number of events):
        then every task ready now runs before the driver is back."""
        return self._budget > 1 << 62

    def runs_next(self, fresh, most: int) -> list:
        """The tasks the scheduler runs next, in order, right after the one
        running now yields: those ready at this time, ahead of anything
        scheduled from now on, as long as ``fresh(task)`` holds (at most
        ``most``, and no more than this run still allows)."""
        heap, out = self._heap, []
        if heap and heap[0][2].token == heap[0][1] and not (heap[0][0] == self._now and fresh(heap[0][2])):
            return out  # (the usual answer, at once)
        for t, seq, task in heapq.nsmallest(most + 4, heap):
            if task.token != seq:
                continue  # an entry the scheduler skips
            if t != self._now or len(out) >= min(most, self._budget) or not fresh(task):
                break
            out.append(task)
        return out

    def kill(self, owner):
        with self.driving():
            for task in [t for t in self._live.values() if t.owner is owner]:
                self._unwind(task)

    def stop(self):
        if self._stopped:
            return
        # Wait for a run in another thread to end, but never hang: a stuck run
        # is abandoned after the watchdog's time.
        seated = not self.in_node_thread() and self._turn.acquire(timeout=self.watchdog + 1.0)
        try:
            self._stop()
        finally:
            if seated:
                self._turn.release()

    def _stop(self):
        if self._stopped:
            return
        self._stopped = True
        if self._broken is None:
            for task in list(self._live.values()):
                self._unwind(task)
        elif self._runner is None:  # a thread is stuck with the baton: release the parked ones, abandon it
            for task in list(self._live.values()):
                if task is not self._current and task.worker is not None:
                    task.killed = True
                    task.worker.sem.release()
        if self._runner is not None:
            self._stop_runner()
            self._heap.clear()
            return
        for w in self._workers:
            if w.task is None:
                w.sem.release()  # an idle worker with no task exits
        stuck = self._current.worker if self._broken is not None and self._current else None
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            if w is not stuck:  # a thread stuck with the baton is abandoned (daemon)
                w.thread.join(max(0.0, deadline - time.monotonic()))
        self._heap.clear()

    def _stop_runner(self):
        """End the runner thread (its idle greenlets first); one stuck with
        the baton is abandoned (daemon), its parked greenlets with it."""
        r = self._runner
        if r.thread is None:
            return
        if self._broken is None:
            r.handoff = None
            r.sem.release()
            r.thread.join(2.0)

    def threads(self) -> list[threading.Thread]:
        """OS threads of this clock that are still alive."""
        if self._runner is not None:
            thread = self._runner.thread
            return [thread] if thread is not None and thread.is_alive() else []
        return [w.thread for w in self._workers if w.thread.is_alive()]

    def live_tasks(self) -> list[_Task]:
        return list(self._live.values())

    def _forget(self, task):
        """A task ended (or will never start)."""
        if self._live.pop(task.id, None) is not None and task.owner is not None:
            key = id(task.owner)
            self._owned[key] -= 1
            if not self._owned[key]:
                del self._owned[key]

    # -- internals ---------------------------------------------------------
    def _check_usable(self):
        if self._broken is not None:
            raise RuntimeError(f"the cluster cannot run after a deadlock: {self._broken}".split("\n")[0])
        if self._stopped:
            raise RuntimeError("the clock is stopped (Cluster.stop() was called)")

    def _is_worker(self):
        return getattr(threading.current_thread(), "_raftkit_clock", None) is self

    def _me(self, what) -> _Task:
        task = self._current
        if task is None or task.worker.ident != threading.get_ident():
            raise RuntimeError(
                f"{what}() blocks, so only a node thread started with go() may call it; "
                "outside node threads the cluster is frozen: use Cluster.run_for() to let time pass")
        if task.killed:
            raise Killed()
        if any(map(_LOCKED, self._guarded)):
            self._lock_held(task, what)
        return task

    def _lock_held(self, task, what):
        name = next(name for lock, name in self._locks.values() if lock.locked())
        frames = [f for f in traceback.extract_stack()[:-3] if f.filename != __file__]
        line = traceback.format_list(frames[-1:])[0].strip() if frames else "?"
        raise DeadlockError(
            f"{task.name} called {what}() while {name} was held. "
            "A lock must never be held across a blocking call (sleep, ticker, channel, RPC): "
            f"in Go this deadlocks every other thread that needs the lock.\n  at {line}",
            {task.name: "".join(traceback.format_list(frames))})

    def _check_locks_released(self, task):
        for lock, name in self._locks.values():
            if lock.locked():
                raise DeadlockError(
                    f"{task.name} returned while {name} was still held: every other thread that "
                    "needs the lock would wait forever. Use `with self.mu:` so that every return releases it.")

    def _schedule(self, task, t):
        seq = next(self._seq)
        task.token = seq
        heapq.heappush(self._heap, (t, seq, task))

    def _yield(self, task):
        if self._runner is None:
            sem = task.worker.sem
            self._dispatch(task)
            sem.acquire()
        else:
            self._dispatch(task)
            self._park()
        if task.killed:
            raise Killed()

    def _yielded(self, task):
        """``task`` yields (or None: the driver hands the baton out): the
        watchdog sees progress, and ``on_yield`` checks what its code did."""
        self._switches += 1
        if task is not None and self.on_yield is not None and not self._unwinding and self._failure is None:
            try:
                self.on_yield(task)
            except BaseException as e:  # a safety violation, typically
                self._failure = e

    def _dispatch(self, prev):
        """Hand the baton to the next ready thread, or back to the driver."""
        self._yielded(prev)
        if self._broken is not None:
            return
        if self._failure is None and not self._unwinding and self._budget > 0:
            heap = self._heap
            while heap:
                t, seq, task = heap[0]
                if task.token != seq:
                    heapq.heappop(heap)
                    continue
                if t > self._limit:
                    break
                heapq.heappop(heap)
                task.token = 0
                self._budget -= 1
                self.events += 1
                if t > self._now:
                    self._now = t
                self._current = self.last_task = task
                if task.again is not None and self._sleeps_again(task):
                    if self._broken is not None:
                        return
                    if self._failure is not None or self._budget <= 0:
                        break
                    continue
                if self._runner is None:
                    (task.worker or self._bind(task)).sem.release()
                else:
                    self._wake(task.worker or self._bind(task))
                return
        self._current = None
        self._driver.release()

    def _sleeps_again(self, task) -> bool:
        """Whether ``task``'s event was taken here (``sleep_again``): it
        sleeps again, and yields as it would have, without running."""
        if task.killed or any(map(_LOCKED, self._guarded)):  # (its own sleep raises then: it runs)
            return False
        try:
            delay = task.again()
        except BaseException as e:  # (the kit's own code: not expected)
            self._failure = self._failure or e
            return True
        if delay is None:
            return False
        self._schedule(task, self._now + delay)
        self._yielded(task)
        return True

    def _bind(self, task) -> _Worker:
        w = self._idle.pop() if self._idle else self._new_worker()
        w.task, task.worker = task, w
        return w

    def _new_worker(self) -> _Worker:
        w = _Worker()
        if self._runner is not None:  # its greenlet is made in the runner thread, when it first runs
            self._workers.append(w)
            return w
        w.thread = threading.Thread(target=self._work, args=(w,), daemon=True,
                                    name=f"raftkit-worker-{len(self._workers)}")
        w.thread._raftkit_clock = self
        w.thread.start()  # may raise "can't start new thread": then the worker is not kept
        self._workers.append(w)
        return w

    def _work(self, w: _Worker):
        w.ident = threading.get_ident()
        _share_one_core(self._cpu)
        while True:
            w.sem.acquire()
            task = self._run_task(w)
            if task is None:
                return
            self._dispatch(task)

    def _run_task(self, w: _Worker):
        """Run the task of worker ``w`` to its end; returns it, or None if
        the worker is to end."""
        task = w.task
        if task is None:
            return None
        try:
            if not task.killed:
                task.fn(*task.args)
                self._check_locks_released(task)
        except Killed:
            pass
        except BaseException as e:
            if not self._stopped and self._failure is None:
                self._failure = e if isinstance(e, RaftkitError) else NodeError(
                    f"{task.name} raised {type(e).__name__}: {e}\n" + "".join(traceback.format_exc()))
        self._forget(task)
        task.worker = None
        w.task = None
        if self._broken is not None or (self._stopped and not self._unwinding):
            return None
        self._idle.append(w)
        return task

    # -- greenlets (greenlets=True) ----------------------------------------
    def _wake(self, w: _Worker):
        """Give the baton to worker ``w``: from the runner thread, the
        greenlet that parks next switches to it; from the driver, the hub does."""
        r = self._runner
        if threading.get_ident() == r.ident:
            r.next = w
            return
        if r.thread is None:
            r.thread = threading.Thread(target=self._hub, daemon=True, name="raftkit-runner")
            r.thread._raftkit_clock = self
            r.thread.start()
        r.handoff = w
        r.sem.release()

    def _park(self):
        """The calling greenlet waits for the baton: it switches to the
        worker the baton went to, or to the hub if it went to the driver."""
        r = self._runner
        w = r.next
        if w is None:
            r.hub.switch()
        else:
            r.next = None
            if w.glet is not r.getcurrent():
                self._enter(w)

    def _enter(self, w: _Worker):
        r = self._runner
        if w.glet is None:
            w.ident = r.ident
            w.glet = r.greenlet(self._glet_work, parent=r.hub)
        w.glet.switch(w)

    def _glet_work(self, w: _Worker):
        while True:
            task = self._run_task(w)
            if task is None:
                return
            self._dispatch(task)
            self._park()

    def _hub(self):
        """The runner thread: it runs the worker the driver hands it, until
        the baton comes back to the driver; at the end its idle workers end."""
        r = self._runner
        r.ident, r.hub = threading.get_ident(), r.getcurrent()
        _share_one_core(self._cpu)
        while True:
            r.sem.acquire()
            w, r.handoff = r.handoff, None
            if w is None:
                break
            self._enter(w)
        for w in self._workers:
            if w.glet is not None and not w.glet.dead and w.task is None:
                w.glet.switch()  # it finds no task and returns

    def _unwind(self, task):
        """Make a parked thread raise Killed and run it to its end, now."""
        task.killed = True
        task.token = 0
        if task.worker is None:  # never started
            self._forget(task)
            return
        self._unwinding = True
        try:
            self._current = task
            if self._runner is None:
                task.worker.sem.release()
            else:
                self._wake(task.worker)
            self._wait_for_baton(limit=2.0)
        finally:
            self._unwinding = False

    def _take_baton_back(self):
        """The driver was interrupted while a node thread held the baton: that
        thread finishes its event and hands the baton back, instead of the run
        going on in the background. Bounded: a stuck thread is a DeadlockError."""
        self._budget = 0  # the next hand-off goes to the driver
        while self._current is not None:
            try:
                self._wait_for_baton()
                return
            except KeyboardInterrupt:
                continue  # a second Ctrl-C: keep waiting (the watchdog still bounds it)
        # The baton came home; if the interrupt hit just after this thread took it
        # back, it holds it already and this times out: either way it holds it now.
        self._driver.acquire(timeout=1.0)

    def _wait_for_baton(self, limit=None):
        limit = self.watchdog if limit is None else limit
        last, since = self._switches, time.monotonic()
        while not self._driver.acquire(timeout=0.05):
            if self._switches != last:
                last, since = self._switches, time.monotonic()
            elif time.monotonic() - since > limit:
                self._broken = self._deadlock(limit)
                raise self._broken

    def _stack(self, w: _Worker | None, running: bool = False) -> str:
        if w is None:
            return "(not running)"
        if self._runner is None:
            return _task_stack(w.thread)
        if running:  # the greenlet the runner thread runs
            return _task_stack(self._runner.thread)
        return _task_stack(None, w.glet and w.glet.gr_frame)

    def _deadlock(self, waited) -> DeadlockError:
        task = self._current
        stacks = {}
        if task is not None:
            stacks[f"{task.name} (holds the baton)"] = self._stack(task.worker, running=True)
        for t in list(self._live.values()):  # a copy: threads may still come and go
            if t is not task and t.worker is not None:
                stacks[t.name] = self._stack(t.worker)
        who = task.name if task else "a node thread"
        return DeadlockError(
            f"{who} ran for {waited:.1f} s of wall time without reaching a kit primitive "
            "(sleep, ticker, channel, RPC). It is stuck in an infinite loop, or waiting on something "
            "outside the kit (a raw threading wait, or a lock another thread holds). Its stack comes first.",
            stacks)


def _share_one_core(cpu):
    """Only one worker runs at a time, so they all share one core: a hand-off
    then costs one context switch instead of a cross-core wake-up. SCHED_BATCH
    stops a woken worker from preempting the one handing over the baton
    (which would bounce on the GIL and switch three times instead of once)."""
    if cpu is None:
        return
    try:
        os.sched_setaffinity(0, {cpu})
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass


@contextlib.contextmanager
def _on_core(cpu):
    """Run the calling thread (the driver) on the workers' core while it
    hands them the baton: waking a thread on another, idle core costs tens of
    microseconds, a switch on the same core a few."""
    before = None
    if cpu is not None:
        try:
            before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {cpu})
        except OSError:  # e.g. a cpuset without that core: run unpinned
            before = None
    try:
        yield
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


def _cpus() -> list:
    """The cores this process may use, in order ([] where that is unknown)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def _given_one_core() -> bool:
    """Whether ``RAFTKIT_CPU`` gives this process's clocks one core each."""
    return os.environ.get("RAFTKIT_CPU", "").isdigit()


def _pick_cpu():
    """The core this clock's threads share: the ``RAFTKIT_CPU``-th (modulo
    their number) of the cores this process may use, if set (a grader or a
    test runner running clocks side by side gives each a core of its own),
    else one chosen by process id."""
    cpus = _cpus()
    if len(cpus) < 2:
        return None
    if _given_one_core():
        return cpus[int(os.environ["RAFTKIT_CPU"]) % len(cpus)]
    return cpus[os.getpid() % len(cpus)]


def _spare_cpu(cpu):
    """A core for work that runs ahead of the scheduler without holding
    its baton (node processes catching up on predicted frames, see
    ``raftkit.isolation``): the core after ``cpu``, unless ``RAFTKIT_CPU``
    gave this clock one core of its own (clocks side by side), or there is
    none other. None: no such core, everything shares ``cpu``."""
    cpus = _cpus()
    if cpu not in cpus or len(cpus) < 2 or _given_one_core():
        return None
    return cpus[(cpus.index(cpu) + 1) % len(cpus)]


class _VirtualChannel:
    def __init__(self, clock: VirtualClock, capacity):
        self._clock, self._capacity = clock, capacity
        self._items: collections.deque = collections.deque()
        self._receivers: collections.deque = collections.deque()  # (task, token)
        self._senders: collections.deque = collections.deque()    # (task, token)

    def __len__(self):
        return len(self._items)

    def has_room(self) -> bool:
        """Whether ``try_send`` would take a value now: a receiver waits, or the queue has room."""
        return (any(task.token == token for task, token in self._receivers) or self._capacity is None
                or len(self._items) < self._capacity)

    def try_send(self, value) -> bool:
        """Send without blocking; False if the channel is full."""
        clock = self._clock
        while self._receivers:
            task, token = self._receivers.popleft()
            if task.token == token:
                task.value = value
                clock._schedule(task, clock._now)
                return True
        if self._capacity is not None and len(self._items) >= self._capacity:
            return False
        self._items.append(value)
        return True

    def send(self, value) -> None:
        """Send, blocking while the channel is full."""
        while not self.try_send(value):
            task = self._clock._me("send")
            self._senders.append((task, task.token))
            self._clock._yield(task)

    def try_recv(self):
        """Receive without blocking: (value, True), or (None, False) if empty."""
        if not self._items:
            return None, False
        value = self._items.popleft()
        self._wake_sender()
        return value, True

    def recv(self, timeout: float | None = None):
        """Receive one value: returns (value, True), or (None, False) on timeout."""
        if timeout is not None:
            _check_delay(timeout)
        clock = self._clock
        if self._items:
            value = self._items.popleft()
            self._wake_sender()
            return value, True
        task = clock._me("recv")
        task.value = _NOTHING
        if timeout is not None:
            clock._schedule(task, clock._now + timeout)
        else:
            task.token = next(clock._seq)
        self._receivers.append((task, task.token))
        clock._yield(task)
        value, task.value = task.value, _NOTHING
        return (None, False) if value is _NOTHING else (value, True)

    def _wake_sender(self):
        while self._senders:
            task, token = self._senders.popleft()
            if task.token == token:
                self._clock._schedule(task, self._clock._now)
                return


# --------------------------------------------------------------------------
# Real clock
# --------------------------------------------------------------------------

class _RealTask:
    __slots__ = ("owner", "name", "thread", "killed")

    def __init__(self, owner, name):
        self.owner, self.name, self.thread, self.killed = owner, name, None, threading.Event()


class RealClock(Clock):
    """Wall-clock time; node threads run freely. ``speed=0.1`` runs ten
    times slower than life (every duration is divided by ``speed``)."""

    virtual = False

    def __init__(self, speed: float = 1.0):
        if not isinstance(speed, (int, float)) or not speed > 0:
            raise ValueError(f"speed must be a number > 0, got {speed!r}")
        self.speed = float(speed)
        self._t0 = time.monotonic()
        self._local = threading.local()
        self._tasks: dict[int, _RealTask] = {}
        self._owned: collections.Counter = collections.Counter()  # live tasks per id(owner)
        self._mu = threading.Lock()
        self._stopped = threading.Event()
        self.events = 0
        self.failure: BaseException | None = None  # first error raised in a node thread

    def now(self, _monotonic=time.monotonic):
        return (_monotonic() - self._t0) * self.speed

    def in_node_thread(self):
        return getattr(self._local, "task", None) is not None

    def go(self, fn, *args, owner=None, name=None):
        if not callable(fn):
            raise TypeError(f"go() expects a callable, got {fn!r}")
        if self._stopped.is_set():
            raise RuntimeError("this clock is stopped")
        me = getattr(self._local, "task", None)
        if me is not None and me.killed.is_set():
            raise Killed()  # a thread of a crashed node starts no more threads
        if owner is None and me is not None:
            owner = me.owner
        task = _RealTask(owner, name or getattr(fn, "__name__", "thread"))
        task.thread = threading.Thread(target=self._run, args=(task, fn, args), daemon=True,
                                       name=f"raftkit-{task.name}")
        with self._mu:
            if owner is not None and self._owned[id(owner)] >= MAX_THREADS_PER_NODE:
                mine = [t for t in self._tasks.values() if t.owner is owner]
                error = _thread_bomb(mine, me.name if me else "the caller")
                self.failure = self.failure or error  # kept even if node code catches it
                raise error
            self._tasks[id(task)] = task
            if owner is not None:
                self._owned[id(owner)] += 1
        task.thread.start()
        return task

    def _run(self, task, fn, args):
        self._local.task = task
        try:
            fn(*args)
        except Killed:
            pass
        except BaseException as e:  # never printed: kept for the cluster to raise
            if self.failure is None and not self._stopped.is_set():
                self.failure = e if isinstance(e, RaftkitError) else NodeError(
                    f"{task.name} raised {type(e).__name__}: {e}\n" + traceback.format_exc())
        finally:
            with self._mu:
                self._tasks.pop(id(task), None)
                if task.owner is not None:
                    self._owned[id(task.owner)] -= 1
                    if not self._owned[id(task.owner)]:
                        del self._owned[id(task.owner)]

    def _me(self, what):
        task = getattr(self._local, "task", None)
        if task is None:
            raise RuntimeError(f"{what}() blocks, so only a node thread started with go() may call it")
        if task.killed.is_set():
            raise Killed()
        return task

    def sleep(self, dt, label="sleep"):
        if not dt >= 0:
            _check_delay(dt)
        task = self._me("sleep")
        if dt == 0:  # Go's time.Sleep(0): returns at once (no wait on a kill that is not there)
            return
        if task.killed.wait(dt / self.speed):
            raise Killed()

    def channel(self, capacity=None):
        _check_capacity(capacity)
        return _RealChannel(self, capacity)

    def kill(self, owner):
        with self._mu:
            tasks = [t for t in self._tasks.values() if t.owner is owner]
        for t in tasks:
            t.killed.set()

    def stop(self):
        self._stopped.set()
        with self._mu:
            tasks = list(self._tasks.values())
        for t in tasks:
            t.killed.set()
        deadline = time.monotonic() + 2.0
        for t in tasks:
            if t.thread is not threading.current_thread():
                t.thread.join(max(0.0, deadline - time.monotonic()))

    def threads(self):
        with self._mu:
            return [t.thread for t in self._tasks.values() if t.thread.is_alive()]


class _RealChannel:
    _SLICE = 0.05  # wall seconds between checks for a kill

    def __init__(self, clock: RealClock, capacity):
        self._clock, self._capacity = clock, capacity
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def __len__(self):
        return len(self._items)

    def try_send(self, value) -> bool:
        if self._capacity is not None and len(self._items) >= self._capacity:
            return False  # full (read without the lock: only a receiver makes room, and it runs after)
        with self._cond:
            if self._capacity is not None and len(self._items) >= self._capacity:
                return False
            self._items.append(value)
            self._cond.notify_all()
            return True

    def send(self, value) -> None:
        while not self.try_send(value):
            task = self._clock._me("send")
            with self._cond:
                self._cond.wait(self._SLICE)
            if task.killed.is_set():
                raise Killed()

    def try_recv(self):
        with self._cond:
            if not self._items:
                return None, False
            value = self._items.popleft()
            self._cond.notify_all()
            return value, True

    def recv(self, timeout=None):
        if timeout is not None:
            _check_delay(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout / self._clock.speed
        task = None
        with self._cond:
            while not self._items:
                task = task or self._clock._me("recv")
                if task.killed.is_set():
                    raise Killed()
                left = self._SLICE if deadline is None else min(self._SLICE, deadline - time.monotonic())
                if left <= 0:
                    return None, False
                self._cond.wait(left)
            value = self._items.popleft()
            self._cond.notify_all()
            return value, True
