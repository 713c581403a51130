"""The untrusted side: a template process, and the node hosts it forks.

The *template* (``python -m raftkit.isolation.host FD``) imports the kit and
the node class once, stays single-threaded, and forks one *host* per node
incarnation when the trusted process asks (the host's end of a fresh socket
pair arrives with the request, ``SCM_RIGHTS``). It also kills and reaps its
hosts on request, and reports how one ended.

A *host* runs one node: the node class, its threads, ``self.mu``. Its clock,
bus, storage, apply and emit are proxies: every primitive is a frame to the
trusted process, which owns the scheduler, and the calling thread waits for
the answer. The node's threads are greenlets of one OS thread (only one
thread of all hosts runs at a time, exactly as in the in-process virtual
clock, so runs replay the same): a reader reads every frame, a ``job`` runs
a node thread's turn (or a handler, or a call from the harness), a
``reply`` resumes the thread that asked.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import itertools
import os
import pickle
import random
import signal
import socket
import sys
import threading
import traceback
import types

import greenlet

from ..clock import Clock, Killed, Ticker, _check_capacity, _check_delay
from ..errors import DeadlockError, NodeError, RaftkitError, SafetyViolation
from ..messages import ApplyMsg, CMState, decode, encode, summarize
from ..raft import extend_if_appended
from ..service import snapshot_due
from . import wire

__all__ = ["template_main"]

_LOCKED = type(threading.Lock()).locked
_MISSING = object()
_ERRORS = {"NodeError": NodeError, "DeadlockError": DeadlockError, "ValueError": ValueError,
           "TypeError": TypeError, "RuntimeError": RuntimeError}
FIELDS = ("current_term", "voted_for", "commit_index", "last_applied", "last_included_index",
          "last_included_term", "election_reset_event", "timeout")
_RESUME = object()  # a thread's turn ended: the main greenlet reads on
_VALUES = ("state",) + FIELDS + ("next_index", "match_index")  # what a report carries, besides the log
YIELDS = frozenset({"call", "sleep", "tick", "recv"})  # requests whose thread the trusted scheduler always parks
STARTED = 64  # threads a turn starts that may start here at once (both sides count them alike)


# --------------------------------------------------------------------------
# The host's side of every primitive
# --------------------------------------------------------------------------

def _job():
    """The job the calling thread (greenlet) runs, or None."""
    return getattr(greenlet.getcurrent(), "job", None)


class _Job:
    __slots__ = ("key", "in_node", "name", "turn")

    def __init__(self, key, in_node, turn=False):
        self.key, self.in_node, self.name, self.turn = key, in_node, "?", turn  # turn: a node thread's


class Host:
    """The connection to the trusted process, and what runs on it."""

    threaded = frozenset({"run"})  # jobs that get a thread (they may block); the others run in the reader

    def __init__(self, fd: int, cls: type):
        self.fd, self.cls = fd, cls
        self.now = 0.0
        self.reader_glet = greenlet.getcurrent()  # reads every frame; see serve()
        self.waiting: dict[int, greenlet.greenlet] = {}  # threads waiting for an answer, by job
        self.idle: list[greenlet.greenlet] = []
        self.tasks: dict[int, tuple] = {}      # local task id -> (fn, args)
        self.values: dict[int, object] = {}    # channel values stay here; handles cross
        self._ids = itertools.count(1)
        self._send_mu = threading.Lock()
        self.reader = wire.Reader(fd, trusted=True)
        self.outbox: list[bytes] = []          # posts, sent with the next frame that waits for an answer
        self._reported = None                  # the last report's values, to send only what changed
        self.node = None
        self.snapshot_interval = None          # the service's: see _apply
        self.locks: list = []                  # (lock, name) that must not be held across a block
        self._sent_log: list = []
        self.shared: dict = {}                 # the harness's lists and dicts, see wire.Shared
        self.channels = 0                      # channels made (see HostClock.channel)
        self.holding = False                   # a thread here has the scheduler's baton (it runs, or waits
        #                                        for an answer that comes at once)
        self.turns: collections.deque = collections.deque()  # turns that came while it had it
        self.free = False                      # the scheduler runs on until a time (no step-by-step)
        self.spawned: list = []                # threads the running turn started (see _started)
        self.armed = None                      # (key, args) of the tick request a silent tick predicts

    # -- frames --------------------------------------------------------------
    def send(self, msg) -> None:
        """Send ``msg`` and the posts before it, in one write; or later, with
        the next frame that waits, while frames that arrived are still to be
        read (ticks the trusted side predicted and turns it sent ahead, see
        process.py: it waits for none of them)."""
        with self._send_mu:
            if self.armed is not None and self._as_predicted(msg):
                return  # the tick request the trusted side predicted: it counts on it unsent
            self.outbox.append(wire.frame(msg))
            if not (self.reader.has_frame() or (self.turns and not self.holding)):
                self._flush()

    def _as_predicted(self, msg) -> bool:
        """Whether ``msg``, the first frame of a thread resumed by a silent
        tick, is the tick request it predicts: the same interval, the due
        time it was given, no lock held, nothing reported as changed. If not,
        a "miss" frame goes first, and the trusted side runs it all again
        without predictions (process.py)."""
        key, args = self.armed
        if msg[0] == "req" and msg[1] == key and msg[2] == "tick" and msg[3] == args and type(msg[4]) is int:
            self.armed = None
            return True
        self._missed(" ".join(map(str, msg[:3 if msg[0] == "req" else 1])))
        return False

    def _missed(self, what: str) -> None:
        """The thread a silent tick resumed does more than tick (``what``):
        a "miss" frame goes before its own."""
        self.outbox.append(wire.frame(("miss", self.armed[0], what)))
        self.armed = None

    def request(self, op: str, *args, block: bool = False, yields: bool | None = None):
        """Send a request for the current job and wait for its answer
        (``yields``: whether the scheduler parks the thread, if not as
        ``YIELDS`` says)."""
        job = _job()
        if job is None:
            raise RuntimeError(f"{op}: this thread was not started by the kit")
        report = self.report() if block else None
        if (op in YIELDS if yields is None else yields) and args[-1] is None:  # (a lock held: it raises there)
            self.holding = False  # the next turn may start here (a turn sent ahead)
        if op in YIELDS or op == "send":
            self._started(op in YIELDS and args[-1] is None)
        self.send(("req", job.key, op, args, report))
        value, error = self._read(job.key)
        if error is not None:
            if error == "killed":
                raise Killed()
            kind, text = error
            raise (DeadlockError(text) if kind == "DeadlockError" else SafetyViolation(kind, text)
                   if kind == "SafetyViolation" else _ERRORS.get(kind, NodeError)(text))
        return value

    def _started(self, yields: bool) -> None:
        """The running turn yields (or blocks in ``send``): when the
        scheduler runs on freely, the threads it started run next, one after
        the other (process.py checks it, as for turns sent ahead), so they
        start here now, numbered ``-tid``; not while threads started before
        them are still to run (those come first: process.py waits too)."""
        spawned, self.spawned = self.spawned, []
        if yields and self.free and spawned and len(self.tasks) == len(spawned):
            self.turns.extend(("job", -tid, self.now, True, "run", tid) for tid in spawned[:STARTED])

    def post(self, op: str, *args) -> None:
        """A request that needs no answer (emit, save): it leaves with the
        next frame (the trusted side reads nothing before that one)."""
        job = _job()
        with self._send_mu:
            if self.armed is not None:  # a silent tick's thread that does more than tick
                self._missed(f"post {op!r}")
            self.outbox.append(wire.frame(("post", job.key if job else 0, op, args)))
            if len(self.outbox) >= 256:
                self._flush()

    def _flush(self) -> None:
        """Write the outbox, in one system call (``_send_mu`` held)."""
        data = b"".join(self.outbox)
        self.outbox.clear()
        wire.write(self.fd, data)

    def held(self, what: str):
        """None, or (line, stack) if a guarded lock is held: the trusted side
        decides whether this call blocks, and raises there if it does."""
        for lock, name in self.locks:
            if _LOCKED(lock):
                frames = [f for f in traceback.extract_stack() if not f.filename.startswith(_KIT_INSIDE)]
                line = traceback.format_list(frames[-1:])[0].strip() if frames else "?"
                return name, line, "".join(traceback.format_list(frames))
        return None

    def report(self):
        """What the trusted side mirrors of the node (for the safety monitor,
        the harness and the drawings): its plain values (four Nones if they
        did not change since the last report), and the log's change; only
        the log's length (an int) if nothing else changed."""
        node = self.node
        if node is None:
            return None
        g = node.__dict__.get
        log = g("log")
        sent = self._sent_log
        if not isinstance(log, list):
            return ("bad", f"self.log is a {type(log).__name__}, not a list")
        keep = len(sent)
        if not (len(log) == keep and log == sent) and not extend_if_appended(sent, log):
            keep = next((k for k, (a, b) in enumerate(zip(log, sent)) if a is not b), min(len(log), len(sent)))
            del sent[keep:]
            sent.extend(log[keep:])
        try:
            new = [(e.term, e.command) for e in log[keep:]] if keep < len(log) else ()
        except AttributeError:
            return ("bad", "self.log holds something that is not a LogEntry")
        values = tuple(map(g, _VALUES))
        state = values[0]
        now = (state._value_ if type(state) is CMState else str(getattr(state, "value", state)), values[1:-2],
               dict(values[-2] or {}), dict(values[-1] or {}))
        blob = wire.dumps(now)  # equal bytes: equal values of equal types (True is not 1 here)
        if blob == self._reported:
            if not new and not self.shared:
                return keep  # the usual report: nothing changed
            now = (None, None, None, None)
        self._reported = blob
        return now + (keep, new, {k: (list(v) if isinstance(v, list) else dict(v))
                                      for k, v in self.shared.items()} or None)

    # -- the reader ------------------------------------------------------------
    # The node's threads are greenlets of the host's one OS thread: only one
    # of them runs at a time anyway (the trusted scheduler hands out a single
    # baton), and a switch between greenlets costs no system call. The
    # thread that waits for an answer reads the frames itself (most often
    # the next one is its answer: no switch at all). An answer for another
    # thread resumes that one, which reads in turn when it waits; a node
    # thread's turn ("run") starts or reuses a thread (so do the jobs in
    # ``threaded``: handlers that block, kvhost.py); any other job (a
    # handler, a call from the harness) runs right in the reader. A thread
    # whose turn ended hands reading back to the main greenlet (``serve``).
    def serve(self) -> None:
        self._read(None)

    def _read(self, key):
        """Read frames until the answer for ``key`` (returned), which
        another thread may read and hand over."""
        while True:
            msg = self.turns.popleft() if self.turns and not self.holding else self._next_frame()
            kind = msg[0]
            self.now = msg[2]
            if kind == "free":  # (its time is the next frame's)
                self.free = msg[1]
                continue
            if kind == "tick":  # a tick predicted idle: its next request is not sent if it is the one predicted
                _, tkey, now, due, interval = msg
                self.armed = (tkey, (interval, due, None))
                kind, msg = "reply", ("reply", tkey, now, due, None)
            elif kind == "sync":  # every frame before this one is read, and every silent tick checked
                self.send(("synced",))
                continue
            if kind == "reply":
                self.holding = True  # its thread runs on
                if msg[1] == key:
                    self.waiting.pop(key, None)
                    return msg[3], msg[4]
                thread, answer = self.waiting.pop(msg[1]), (msg[3], msg[4])
            elif kind == "job":
                _, jkey, _, in_node, what, payload = msg
                if what not in self.threaded:
                    holding = self.holding
                    self._run_job(jkey, in_node, what, payload)
                    self.holding = holding  # (a handler, or a call from the harness, in whatever thread runs)
                    continue
                if self.holding:  # a turn sent ahead: it starts when the thread running now yields
                    self.turns.append(msg)
                    continue
                self.holding = True
                thread = self.idle.pop() if self.idle else greenlet.greenlet(self._thread, parent=self.reader_glet)
                answer = (jkey, in_node, what, payload)
            elif kind == "quit":
                os._exit(0)
            else:
                continue
            if key is not None:
                self.waiting[key] = greenlet.getcurrent()
            got = thread.switch(answer)  # it runs until it waits, and reads, or its turn ends
            if got is not _RESUME:
                return got  # the answer for key, read by another thread

    def _next_frame(self):
        reader = self.reader
        data = reader.take()
        try:
            while data is None:
                if self.outbox:
                    with self._send_mu:
                        self._flush()
                reader.read_ready()
                data = reader.take()
        except wire.HostGone:
            os._exit(0)  # the trusted side is gone: so is this node
        return pickle.loads(data)

    def _thread(self, assigned) -> None:
        """A node thread: it runs one turn after another (a goroutine pool)."""
        me = greenlet.getcurrent()
        while True:
            self._run_job(*assigned)
            self.idle.append(me)
            assigned = self.reader_glet.switch(_RESUME)

    def _run_job(self, key, in_node, what, payload):
        job = _Job(key, in_node, what == "run")
        me = greenlet.getcurrent()
        outer, me.job = getattr(me, "job", None), job
        try:
            self._end(job, what, payload)
        finally:
            me.job = outer

    def _end(self, job, what, payload):
        key = job.key
        result, error = None, None
        try:
            result = self._do_job(job, what, payload)
        except Killed:
            return  # the trusted side stopped waiting: this node is being crashed
        except RaftkitError as e:
            error = (type(e).__name__, str(e))
        except BaseException as e:
            name = job.name if what == "run" else f"node {getattr(self.node, 'id', '?')}: {_job_name(what, payload)}"
            error = ("NodeError", f"{name} raised {type(e).__name__}: {e}\n" + _format_error(e))
        report = self.report()
        try:
            wire.dumps(result)
        except Exception as e:
            result, error = None, ("NodeError", f"{what} returned something that cannot be sent: {e}")
        if what in self.threaded:
            self.holding = False  # its thread ends: the next turn may start
        if what == "run":
            self._started(True)
        self.send(("end", key, result, error, report))

    def _do_job(self, job, what, payload):
        if what == "run":
            fn, args, job.name = self.tasks.pop(payload)
            fn(*args)
            for lock, name in self.locks:
                if _LOCKED(lock):
                    raise DeadlockError(
                        f"node {self.node.id}: {job.name} returned while {name} was still held: every other "
                        "thread that needs the lock would wait forever. Use `with self.mu:` so that every "
                        "return releases it.")
            return None
        if what == "construct":
            return self._construct(self.cls, *payload)
        if what == "handle":
            method, packet = payload
            handler = getattr(self.node, method, None)
            if handler is None or method.startswith("_"):
                raise TypeError(f"node {self.node.id} ({type(self.node).__name__}) has no RPC handler {method!r}")
            reply = handler(decode(*packet))
            return (encode(reply), summarize(reply) if reply is not None else "None",
                    getattr(reply, "vote_granted", getattr(reply, "success", None)))
        if what == "call":
            path, args, kwargs = payload
            args = [self._resolve(a) if isinstance(a, wire.Ref) else self._shared(a) if isinstance(a, wire.Shared)
                    else a for a in args]
            return self._resolve(path)(*args, **kwargs)
        if what == "setattr":
            name, value = payload
            if isinstance(value, wire.Rebind):
                value = types.MethodType(_kit_function(*value), self.node)
            setattr(self.node, name, value)
            return None
        if what == "getattr":
            value = self._resolve(payload, _MISSING)
            if value is _MISSING:
                return ("missing", None)
            if callable(value):
                return ("method", None)
            try:
                wire.dumps(value)
                return ("value", value)
            except Exception:
                return ("object", type(value).__name__)
        if what in ("setitem", "delitem"):
            target = getattr(self.node, payload[0])
            if what == "setitem":
                target[payload[1]] = payload[2]
            else:
                del target[payload[1]]
            return None
        if what == "lock":
            (self.node.mu.acquire if payload else self.node.mu.release)()
            return None
        raise ValueError(f"unknown job {what!r}")

    def _shared(self, shared):
        key, value = shared
        return self.shared.setdefault(key, value)

    def _resolve(self, path, default=None):
        obj = self.node
        for name in path:
            obj = getattr(obj, name) if default is None else getattr(obj, name, default)
            if obj is _MISSING:
                break
        return obj

    def _construct(self, cls, i, peers, config, rng_seed, state, snapshot, snapshot_interval=None):
        self.snapshot_interval = snapshot_interval
        clock, bus = HostClock(self), HostBus(self, i)
        storage = HostStorage(self, state, snapshot)
        node = cls(i, peers, clock=clock, bus=bus, storage=storage, apply=self._apply, config=config,
                   rng=random.Random(rng_seed), emit=self._emit)
        self.node = node
        self.locks.append((node.mu, f"node {i}'s lock self.mu"))
        return None

    def _apply(self, msg) -> None:
        """Hand ``msg`` to the trusted service. It waits for the answer only
        when the service calls the node back (the snapshot it takes every k
        entries), as it would in one process; else the message leaves with
        the next frame (the service is the trusted side's: nothing here
        reads it)."""
        fields = tuple(getattr(msg, f) for f in ApplyMsg.__dataclass_fields__)
        if snapshot_due(self.snapshot_interval, msg):
            self.request("apply", fields, block=True)
        else:
            self.post("apply", fields)

    def _emit(self, kind, node, peer=None, detail=""):
        self.post("emit", kind, peer, detail)


def _job_name(what, payload) -> str:
    if what == "call":
        return ".".join(payload[0])
    return what if what != "handle" else f"handler {payload[0]}"


def _format_error(e: BaseException) -> str:
    """The traceback of ``e`` without this module's frames."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith(_HERE)]
    return ("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
            + "".join(traceback.format_exception_only(type(e), e)))


def _kit_function(module: str, qualname: str, source: str):
    """The kit's function, compiled from the source the harness sent (the
    kit this process sees may have it stubbed out)."""
    import importlib
    scope = dict(vars(importlib.import_module(module)))
    exec(compile(source, f"<raftkit's {qualname}>", "exec"), scope)
    return scope[qualname.rpartition(".")[2]]


_HERE = os.path.dirname(os.path.abspath(__file__))
_KIT_INSIDE = (_HERE, os.path.join(os.path.dirname(_HERE), "clock.py"))


class HostClock(Clock):
    """The clock node code sees inside a host: every primitive asks the
    trusted scheduler."""

    virtual = True

    def __init__(self, host: Host):
        self.host = host

    def now(self):
        return self.host.now

    def in_node_thread(self):
        job = _job()
        return job is not None and job.in_node

    def go(self, fn, *args, owner=None, name=None):
        if not callable(fn):
            raise TypeError(f"go() expects a callable, got {fn!r}")
        tid = next(self.host._ids)
        name = str(name or getattr(fn, "__name__", "thread"))
        if _job() is None:
            raise RuntimeError("go: this thread was not started by the kit")
        self.host.tasks[tid] = (fn, args, name)
        self.host.post("go", tid, name)  # no answer needed: an error comes back with the next one
        if _job().turn:
            self.host.spawned.append(tid)

    def sleep(self, dt, label="sleep"):
        if not dt >= 0:
            _check_delay(dt)
        self.host.request("sleep", float(dt), self.host.held("sleep"), block=True)

    def ticker(self, interval):
        return HostTicker(self, interval)

    def channel(self, capacity=None):
        _check_capacity(capacity)
        host = self.host
        host.post("chan", host.channels, capacity)  # numbered here as there: in the order they are made
        host.channels += 1
        return HostChannel(host, host.channels - 1, capacity)

    def kill(self, owner):
        raise RuntimeError("a node cannot kill threads; the harness crashes nodes")

    def stop(self):
        raise RuntimeError("a node cannot stop the clock")

    def guard_lock(self, lock, name):
        self.host.locks.append((lock, name))

    def unguard_lock(self, lock):
        self.host.locks[:] = [(lk, n) for lk, n in self.host.locks if lk is not lock]


class HostTicker(Ticker):
    """A ticker whose tick the trusted side times (``Ticker.tick`` there, on
    the values sent), so that it can tell the next request of a ticker
    thread before it comes (process.py, predicted ticks)."""

    def tick(self) -> None:
        host = self.clock.host
        self._next = host.request("tick", float(self.interval), float(self._next), host.held("tick"), block=True)


class HostChannel:
    """A channel of the node's. The channel is the trusted side's (a blocking
    ``send`` or ``recv`` waits in its scheduler), but only this node's
    threads use it, so this side keeps an exact copy of its state: what is
    queued, and which threads wait in ``recv``. An operation that does not
    block is decided here, on the copy, with the trusted channel's own rule
    (``clock._VirtualChannel``), and leaves as a post that the trusted side
    performs and checks: no round trip."""

    def __init__(self, host: Host, cid: int, capacity):
        self.host, self.cid, self.capacity = host, cid, capacity
        self.items: collections.deque = collections.deque()      # handles queued there
        self.receivers: collections.deque = collections.deque()  # threads waiting there, not handed a value yet

    def _handle(self, value) -> int:
        h = next(self.host._ids)
        self.host.values[h] = value
        return h

    def _offer(self, h) -> bool:
        """``try_send`` as the trusted channel runs it: a waiting receiver
        first, then the queue, if it has room."""
        if self.receivers:
            self.receivers.popleft()
            return True
        if self.capacity is not None and len(self.items) >= self.capacity:
            return False
        self.items.append(h)
        return True

    def __len__(self):
        return len(self.items)

    def try_send(self, value) -> bool:
        h = self._handle(value)
        ok = self._offer(h)
        if not ok:
            self.host.values.pop(h, None)
        self.host.post("try_send", self.cid, h, ok)
        return ok

    def send(self, value) -> None:
        h = self._handle(value)
        full = not (self.receivers or self.capacity is None or len(self.items) < self.capacity)
        self.host.request("send", self.cid, h, self.host.held("send"), block=True, yields=full)
        self._offer(h)  # where the trusted channel put it, once it had room

    def try_recv(self):
        if not self.items:
            return None, False  # (nothing changes there either)
        h = self.items.popleft()
        self.host.post("try_recv", self.cid, h)
        return self.host.values.pop(h, None), True

    def recv(self, timeout=None):
        if timeout is not None:
            _check_delay(timeout)
        if self.items:
            return self.try_recv()
        me = object()
        self.receivers.append(me)
        try:
            h, ok = self.host.request("recv", self.cid, timeout, self.host.held("recv"), block=True)
        finally:
            if me in self.receivers:  # it timed out (a value handed to it left the copy with its sender)
                self.receivers.remove(me)
        return (self.host.values.pop(h, None), True) if ok else (None, False)


class HostBus:
    """``bus.call`` inside a host: the message leaves encoded, the reply
    comes back encoded."""

    def __init__(self, host: Host, i: int):
        self.host, self.id = host, i

    def call(self, src, dst, method, args):
        packet = encode(args)
        rpacket = self.host.request("call", dst, method, packet, summarize(args), self.host.held("call"),
                                    block=True)
        return None if rpacket is None else decode(*rpacket)


class HostStorage:
    """What the node persisted: read locally, every save sent to the
    trusted storage (a restarted node's fresh process gets only that)."""

    def __init__(self, host, state: bytes, snapshot: bytes):
        self.host, self._state, self._snapshot = host, state, snapshot

    def save(self, state, snapshot=None):
        for name, value in (("state", state), ("snapshot", snapshot)):
            if value is not None and not isinstance(value, (bytes, bytearray)):
                raise TypeError(f"{name} must be bytes or None, got {type(value).__name__}")
        state, snapshot = bytes(state), None if snapshot is None else bytes(snapshot)
        self.host.post("save", state, snapshot)
        self._state = state
        if snapshot is not None:
            self._snapshot = snapshot

    def read_state(self):
        return self._state

    def read_snapshot(self):
        return self._snapshot

    def state_size(self):
        return len(self._state)

    def snapshot_size(self):
        return len(self._snapshot)

    def __repr__(self):
        return "<storage kept by the harness>"


# --------------------------------------------------------------------------
# The template
# --------------------------------------------------------------------------

def _load_class(spec, progress=None):
    """The node class a spec names: ``("import", module, qualname, sys.path)``,
    or ``("load", module, function, args)``: a loader of the kit (named,
    not imported here, so the layers stay apart) that returns (class, info)."""
    import importlib
    kind = spec[0]
    if kind == "import":
        _, module, qualname, path = spec
        sys.path[:0] = [p for p in path if p not in sys.path]
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj, None
    if kind == "load" and spec[1].startswith("raftkit."):
        _, module, function, args = spec
        return getattr(importlib.import_module(module), function)(*args, progress=progress)
    raise ValueError(f"unknown class spec {kind!r}")


def _host_main(fd: int, cls, cpu) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if cpu is not None:  # the scheduler's core: a hand-off is a switch on one core, not a cross-core wake-up
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, {cpu})
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    (getattr(cls, "raftkit_host", None) or Host)(fd, cls).serve()  # a KV template's hosts: kvhost.KVHost


def template_main(ctl_fd: int) -> None:
    """Load the class named on stdin, then serve spawn / kill / status
    requests on the ``SOCK_SEQPACKET`` socket ``ctl_fd`` until it closes."""
    import faulthandler  # (loaded here once, not in every host: see spawn)
    with contextlib.suppress(Exception):
        _libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the grader
    _socket_filter()  # (made once, for every host)
    ctl = socket.socket(fileno=ctl_fd)
    from .sandbox import apply_limits
    apply_limits()

    def answer(number, kind, value):
        ctl.send(wire.dumps((number, kind, value)))

    try:
        spec = wire.Reader(0, trusted=True).recv()
        from .uidsandbox import enter_uid_sandbox
        enter_uid_sandbox(spec)  # a user of its own where bubblewrap cannot run (no-op otherwise)
        cls, info = _load_class(spec, progress=lambda n: answer(0, "cell", n))
        if cls is None:
            answer(0, "refused", info)
            return
        answer(0, "ready", info)
        gc.freeze()  # what is loaded stays shared with every host: their collections do not touch (copy) it
    except BaseException as e:
        answer(0, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-4000:]}")
        return
    while True:
        data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 1)
        if not data:
            os._exit(0)
        number, op, *args = pickle.loads(data)
        if op == "spawn":
            if not fds:
                answer(number, "error", "no socket came with the spawn request")
                continue
            if threading.active_count() != 1:
                answer(number, "error", "the node class started threads while it was loaded")
                os.close(fds[0])
                continue
            stacks_r, stacks_w = os.pipe()
            alone = bool(os.environ.get("RAFTKIT_LIMITS") and not os.environ.get("RAFTKIT_UID"))  # in bwrap
            ids = os.getuid(), os.getgid()  # (a child apart has the overflow ids until it maps them)
            pid, apart = _fork_apart() if alone else (os.fork(), False)
            if pid == 0:
                try:
                    ctl.close()
                    keep = sorted((fds[0], stacks_w))
                    os.closerange(3, keep[0])
                    os.closerange(keep[0] + 1, keep[1])
                    os.closerange(keep[1] + 1, 1 << 16)
                    with contextlib.suppress(Exception):
                        _libc().prctl(1, signal.SIGKILL)  # and this host with its template
                    if apart:
                        _settle_namespaces(*ids)
                        _hide_proc()
                    elif alone:
                        _private_namespaces()
                    if alone:
                        _no_sockets()
                    # the running thread's stack, on request (a node that stopped answering)
                    faulthandler.register(signal.SIGUSR1, file=stacks_w, all_threads=True)
                    _host_main(fds[0], cls, args[0])
                finally:
                    os._exit(70)
            os.close(fds[0])
            os.close(stacks_w)
            os.set_blocking(stacks_r, False)
            _HOSTS.add(pid)
            _STACKS[pid] = stacks_r
            answer(number, "spawned", pid)
        elif op == "stacks":
            answer(number, "stacks", _stacks(args[0]))
        elif op == "kill":
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(args[0], signal.SIGKILL)
                os.waitpid(args[0], 0)
            _forget(args[0])
            answer(number, "killed", None)
        elif op == "killall":  # a grading run ended: none of its nodes outlives it
            for pid in list(_HOSTS):
                with contextlib.suppress(ProcessLookupError, ChildProcessError):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                _forget(pid)
            answer(number, "killed", None)
        elif op == "status":
            answer(number, "status", _status(*args))
        _reap()


_HOSTS: set = set()  # hosts forked and not known to be reaped
_STACKS: dict = {}   # pid -> the read end of the pipe its faulthandler writes to
_ENDED: dict = {}  # pid -> wait status of hosts reaped before anyone asked


_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWIPC, _CLONE_NEWPID, _CLONE_NEWNET = (
    0x00020000, 0x10000000, 0x08000000, 0x20000000, 0x40000000)
_APART = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWPID  # (the network: see _no_sockets)
_SYS_CLONE = {"x86_64": 56, "aarch64": 220}  # clone(2)'s number, where its first argument is the flags
# seccomp's architecture code, and the numbers of socket, socketpair, bind, listen, connect, io_uring_setup
_SOCKET_CALLS = {"x86_64": (0xC000003E, (41, 53, 49, 50, 42, 425)),
                 "aarch64": (0xC00000B7, (198, 199, 200, 201, 203, 425))}


@functools.cache
def _libc(python: bool = False):
    """The C library through ctypes, made once in the template (in each
    host it would cost a fraction of a millisecond). ``python``: calls that
    keep the GIL."""
    import ctypes
    return (ctypes.PyDLL if python else ctypes.CDLL)(None, use_errno=True)


def _fork_apart() -> tuple[int, bool]:
    """``os.fork()``, with the child in namespaces of its own from its
    first instruction (see ``_private_namespaces``): one ``clone(2)`` with
    the namespace flags, wrapped the way ``os.fork`` wraps ``fork(2)``. So
    the node needs no second process to be pid 1 of its PID namespace.
    Returns (pid, True), or ``os.fork()``'s (pid, False) where clone cannot
    be called so (another architecture, namespaces refused)."""
    number = _SYS_CLONE.get(os.uname().machine)
    if number is not None:
        import ctypes
        python = ctypes.pythonapi
        python.PyOS_BeforeFork()  # what os.fork does around fork(2): locks, at-fork callbacks
        pid = _libc(python=True).syscall(number, _APART | signal.SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            python.PyOS_AfterFork_Child()
            return 0, True
        python.PyOS_AfterFork_Parent()
        if pid > 0:
            return pid, True
    return os.fork(), False


@functools.cache
def _socket_filter():
    """A seccomp filter (classic BPF, as ``struct sock_fprog``) that fails
    every system call that makes, names or joins a socket with EPERM, and
    any call of another ABI (x86's 32-bit ones); None on an unknown machine.
    Made once, in the template."""
    import ctypes
    import struct
    known = _SOCKET_CALLS.get(os.uname().machine)
    if known is None:
        return None
    arch, numbers = known
    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    refuse, allow = 0x00050000 | 1, 0x7FFF0000    # SECCOMP_RET_ERRNO | EPERM, SECCOMP_RET_ALLOW
    checks = [(jge, 0x40000000)] if arch == 0xC000003E else []  # x32 calls: their numbers have this bit
    checks += [(jeq, n) for n in numbers]
    program = [(load, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, refuse), (load, 0, 0, 0)]
    program += [(op, len(checks) - k, 0, n) for k, (op, n) in enumerate(checks)]  # to the refusal, past the rest
    program += [(ret, 0, 0, allow), (ret, 0, 0, refuse)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *i) for i in program))
    fprog = ctypes.create_string_buffer(struct.pack("@HP", len(program), ctypes.addressof(code)))
    return fprog, code  # (the code must live as long as the program that points at it)


def _no_sockets() -> None:
    """No network for a node process, not even with the other nodes of its
    sandbox: no socket can be made, named or joined (seccomp), so its one
    channel is the socket to the harness it was given. Where seccomp cannot
    be had, a network namespace of its own (as costly as the rest of its
    start: a fresh loopback and its tables, made and torn down)."""
    libc, made = _libc(), _socket_filter()
    if made is not None and libc.prctl(38, 1, 0, 0, 0) == 0 and libc.prctl(22, 2, made[0], 0, 0) == 0:
        return  # PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER
    libc.unshare(_CLONE_NEWNET)


def _settle_namespaces(uid: int, gid: int) -> None:
    """In a host's fresh user and mount namespaces: map its user (the
    template's ``uid`` and ``gid``) to itself, and give it a private
    ``/tmp`` and ``/dev/shm``."""
    libc = _libc()
    maps = (("setgroups", b"deny"), ("uid_map", b"%d %d 1" % (uid, uid)), ("gid_map", b"%d %d 1" % (gid, gid)))
    for name, text in maps:  # (os.open, not open(): no text layers for each host to make)
        with contextlib.suppress(OSError):
            fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
            try:
                os.write(fd, text)
            finally:
                os.close(fd)
    for target in (b"/tmp", b"/dev/shm"):
        libc.mount(b"tmpfs", target, b"tmpfs", 0, b"size=64m,mode=1777")


def _hide_proc() -> None:
    """As pid 1 of its own PID namespace: no ``/proc`` at all (read-only,
    empty): none is needed, and the template's would show the other nodes."""
    _libc().mount(b"tmpfs", b"/proc", b"tmpfs", 0x1, b"size=4k")


def _private_namespaces() -> None:
    """Give this node host namespaces of its own inside the sandbox where
    ``_fork_apart`` could not: its own IPC, mounts (a private ``/tmp`` and ``/dev/shm``, and an
    empty ``/proc``) and PID namespace (it can signal no other node's
    process), so nodes reach each other only through the harness's bus. The
    process that was forked stays behind as a shell that passes on the stack
    request and the way its node ended."""
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_APART) != 0:
        return  # the sandbox is still there; only the nodes are not apart from each other
    _settle_namespaces(uid, gid)
    child = os.fork()
    if child == 0:  # pid 1 of the new PID namespace: the node
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed with its shell
        _hide_proc()
        return
    signal.signal(signal.SIGUSR1, lambda signum, frame: os.kill(child, signal.SIGUSR1))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 70)


def _reap() -> None:
    """Collect hosts that ended by themselves (no zombies), keeping how."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                break
            _ENDED[pid] = status
            _forget(pid)
            while len(_ENDED) > 10_000:
                _ENDED.pop(next(iter(_ENDED)))


def _stacks(pid: int) -> str:
    """Every thread's stack of host ``pid`` (faulthandler's format)."""
    fd = _STACKS.get(pid)
    if fd is None:
        return ""
    import time
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    chunks, deadline = [], time.monotonic() + 3.0  # a loaded machine: the dump may take a while to start
    while time.monotonic() < deadline and sum(map(len, chunks)) < 1 << 16:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        if not data:
            break
        chunks.append(data)
        deadline = min(deadline, time.monotonic() + 0.2)  # started: the rest follows at once
    return b"".join(chunks).decode(errors="replace")[:1 << 16]


def _forget(pid: int) -> None:
    _HOSTS.discard(pid)
    fd = _STACKS.pop(pid, None)
    if fd is not None:
        os.close(fd)


def _status(pid: int, wait: float):
    import time
    deadline = time.monotonic() + wait
    while True:
        try:
            done, status = (pid, _ENDED.pop(pid)) if pid in _ENDED else os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "has ended"
        if done:
            if os.WIFSIGNALED(status):
                return f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
            return f"exited with code {os.waitstatus_to_exitcode(status)}"
        if time.monotonic() > deadline:
            return "stopped answering"
        time.sleep(0.01)


