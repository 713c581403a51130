"""The trusted side of ``Cluster(..., isolation="process")``.

Every node incarnation runs in a process of its own (a *host*, forked from a
warm *template*, see ``host.py``). This side keeps everything that decides
what happened: the scheduler, the bus, storage, the services, the safety
monitor and the trace. Each node thread has a twin task here: when the host
thread blocks in a primitive, its twin performs that primitive on the real
``VirtualClock`` (sleeping, receiving, calling over the bus) and answers when
it resumes. The scheduler therefore sees exactly the calls, in exactly the
order, of an in-process run, and produces the same trace.

Nothing a host sends is trusted: frames are bounded and decoded without
running code (``wire.safe_loads``), every request is checked for kind, type
and range, and a host that exits, is killed, sends garbage or stops answering
fails that run with a message naming the node, never the process reading it.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import functools
import itertools
import os
import pickle
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time

from ..clock import Killed, next_tick
from ..errors import DeadlockError, NodeError
from ..messages import AppendEntriesArgs, AppendEntriesReply, ApplyMsg, CMState, LogEntry, decode, encode, summarize
from ..raft import extend_if_appended
from ..service import Service, snapshot_due
from . import rpcs, wire
from .host import FIELDS, STARTED, YIELDS  # (what the host knows of the scheduler)

__all__ = ["NodeProxy", "ProcessNodes", "Template", "class_spec", "hosted_class", "safe_service", "LoadRefused",
           "LoadTimeout", "LoadEnded", "template_for", "Mispredicted", "mispredicted", "strict"]

_STARTUP = 30.0            # wall seconds a template may take to start, before its own load time limit
_MAX_TEXT = 10_000          # characters of an event's detail, a summary, a name
_INT = int
_NO_LOCK = contextlib.nullcontext()
_SLICE = 0.1               # wall seconds a read waits before the watchdog hears that it still waits
_FRAMES = ("req", "post", "end")
_WAITING = (CMState.FOLLOWER, CMState.CANDIDATE)  # the roles whose election timer waits
_DEFERRED = 64             # predicted frames a host may have to run before it next answers
_EAGER = 4                 # to a host on a core of its own they go by so many (see _eager), and
_UNCONFIRMED = 128         # up to so many before a frame that waits (32 writes; a socket takes about 160)
_SYNCED = wire.dumps(("synced",))  # a host's answer to "sync"
_AHEAD = 8                 # turns sent ahead with the one that starts a fan-out
_BLOCKING = YIELDS | {"send"}  # and one that yields when the channel is full (the host's copy of it says so too)
_STATES = {m.value: m for m in CMState}
# what makes the reference keep a snapshot for its applier (a handler's or a call's name, a field set)
_SNAPSHOT_PENDS = frozenset({"install_snapshot", ("install_snapshot",), "pending_snapshot"})
_SCALARS = frozenset(FIELDS)  # the numbers a report carries (not next_index, match_index)
_APPLY_FIELDS = tuple(ApplyMsg.__dataclass_fields__)  # an "apply" post's fields, in order (host.Host._apply)
_PICKLE = pickle.HIGHEST_PROTOCOL  # (raft.py's, for what it persists)
# The reference's methods each newer prediction assumes; one the node class writes itself turns it off
# (its code may differ from the reference's there, and every run would be run twice).
_OWN = {"rounds": {"run_heartbeats", "send_heartbeats", "send_append_entries"}, "wakes": {"run_applier"},
        "leader commits": {"send_append_entries", "advance_commit_index"}, "follower commits": {"append_entries"},
        "submits": {"submit", "persist"}, "appends": {"append_entries", "persist"}}
_INTS = frozenset({int})
_FIELD_TYPES = tuple(frozenset({int, float}) if name in ("election_reset_event", "timeout") else
                     frozenset({int, type(None)}) if name == "voted_for" else _INTS for name in FIELDS)
_KIT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def class_spec(node_class) -> tuple:
    """How a template finds ``node_class``: its module and name. A class
    defined in ``__main__`` or inside a function cannot be found by another
    process."""
    spec = getattr(node_class, "raftkit_spec", None)
    if spec is not None:
        return spec
    module, qualname = node_class.__module__, node_class.__qualname__
    if module == "__main__" or "<locals>" in qualname:
        raise ValueError(
            f'isolation="process" runs each node in a process of its own, which imports its class: '
            f"{qualname} is defined in {'a notebook or script' if module == '__main__' else 'a function'}; "
            "put it in a module (a .py file on sys.path)")
    return ("import", module, qualname, tuple(p for p in sys.path if isinstance(p, str)))


def hosted_class(spec: tuple, name: str = "ConsensusModule", sandbox=None, kit: str | None = None,
                 predict: bool = False, written=()) -> type:
    """A stand-in for a node class that exists only in node processes
    (``spec`` says how a template gets it): ``Cluster(node_class=...)`` with
    it runs every node isolated, and this process never loads the class.
    ``predict``: its clusters predict idle election-timer ticks (see
    ``NodeHost._idle_ticks``); a run whose prediction failed must be run
    again without (``mispredicted``, ``strict``). ``written``: the methods
    the class writes itself (an exercise's): the round trips whose
    prediction rests on them are not predicted (``_OWN``)."""
    return type(name, (), {"raftkit_spec": spec, "raftkit_sandbox": sandbox, "raftkit_kit": kit,
                           "raftkit_predict": predict, "raftkit_written": frozenset(written), "__module__": __name__,
                           "__doc__": f"{name}, loaded only in node processes"})


def strict(stand_in) -> type:
    """``stand_in`` (a class from ``hosted_class`` or ``kvprocess.hosted_kv``) without predictions."""
    fields = {k: v for k, v in vars(stand_in).items() if k not in ("__dict__", "__weakref__")}
    return type(stand_in.__name__, stand_in.__bases__, dict(fields, raftkit_predict=False))


def mispredicted(cluster) -> str | None:
    """Why a prediction of ``cluster``'s node processes failed, or None:
    then that run went differently from the real one, and must be run
    again with ``strict`` nodes. Every tick still deferred is checked first."""
    hosts = getattr(cluster, "_hosts", None)
    return None if hosts is None else hosts.settle()


class Mispredicted(NodeError):
    """A node process did not do what its predicted ticks said it would."""


# --------------------------------------------------------------------------
# The template: one warm process per node class, that forks hosts
# --------------------------------------------------------------------------

class LoadTimeout(NodeError):
    """Loading the class (running the notebook's cells) took too long."""

    def __init__(self, message: str, cell: int | None = None):
        super().__init__(message)
        self.cell = cell


class LoadEnded(NodeError):
    """The template's process ended while it loaded the class (the
    notebook's cells exited it, killed it, or ran out of memory)."""

    def __init__(self, message: str, cell: int | None, ended: str):
        super().__init__(message)
        self.cell, self.ended = cell, ended


class LoadRefused(Exception):
    """The notebook was loaded, but does not define the class properly
    (``info`` says why, for the report)."""

    def __init__(self, info: dict):
        super().__init__(info.get("error") or "the notebook does not define the node class")
        self.info = info


def _load_info(info) -> dict:
    """What a template says about loading the class: checked plain data."""
    info = info if isinstance(info, dict) else {}
    warnings = info.get("warnings") if isinstance(info.get("warnings"), list) else []
    error = info.get("error")
    return {"ok": info.get("ok") is True, "error": error[:20_000] if isinstance(error, str) else None,
            "warnings": [w[:2000] for w in warnings[:100] if isinstance(w, str)]}


class Template:
    """A process that loaded the node class and forks a host on request.

    Requests and answers are records on a ``SOCK_SEQPACKET`` pair (a host's
    socket travels with its spawn request, ``SCM_RIGHTS``), each answer
    carrying its request's number: a client killed in the middle of a request
    leaves nothing that the next one could misread."""

    def __init__(self, spec, *, sandbox=None, load_timeout: float = 60.0, kit: str | None = None):
        self.spec, self.sandbox = spec, sandbox
        self.mu = threading.Lock()
        self.owner = os.getpid()
        self._ids = itertools.count(1)
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # without the working folder on its path: a raftkit folder there is not the kit the grader runs
        cmd = [sys.executable, "-c", "import sys; sys.path[:] = [p for p in sys.path if p]; "
               f"from raftkit.isolation.host import template_main as m; m({child.fileno()})"]
        root = _KIT_ROOT if kit is None else os.path.dirname(kit)  # the folder holding the raftkit package
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [os.environ.get("PYTHONPATH", "")]),
                   PYTHONDONTWRITEBYTECODE="1", MALLOC_ARENA_MAX="2")
        if sandbox is not None:
            cmd, env = sandbox.wrap(cmd, env, child.fileno())
        self.proc = subprocess.Popen(cmd, pass_fds=(child.fileno(),), stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
        child.close()
        self.ctl = parent
        self.info: dict = {}
        self.last_cell = None
        try:
            wire.send(self.proc.stdin.fileno(), spec)
            self.proc.stdin.close()
            kind, info = self._ask(None, timeout=load_timeout)
            self.info = _load_info(info) if kind in ("ready", "refused") else info
        except TimeoutError:
            self.close()
            where = f" (it was running cell {self.last_cell})" if self.last_cell else ""
            raise LoadTimeout(f"loading the node class did not finish within {load_timeout:.0f} s{where}",
                              self.last_cell) from None
        except wire.HostGone:
            ended = self._ended()
            self.close()
            raise LoadEnded(f"its process ended ({ended}) while loading the node class", self.last_cell,
                            ended) from None
        except (wire.ProtocolError, OSError) as e:
            err = self._stderr()
            self.close()
            raise NodeError(f"the node class could not be loaded in a node process ({type(e).__name__}: {e})"
                            + (f":\n{err}" if err else "")) from None
        if kind == "refused":
            self.close()
            raise LoadRefused(_load_info(self.info))
        if kind != "ready":
            self.close()
            raise NodeError(f"the node class could not be loaded in a node process: {str(self.info)[:4000]}")

    def _ended(self) -> str:
        """How the template's process ended ("exit status 0", "killed by SIGKILL")."""
        try:
            rc = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if self.sandbox is not None and rc > 128:  # bwrap passes on a signal as 128 + its number
            rc = -(rc - 128)
        if rc < 0:
            import signal
            sig = -rc
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
            return f"killed by {name}" + (" (out of memory?)" if sig in (9, 11, 6) else "")
        return f"exit status {rc}"

    def _stderr(self) -> str:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(timeout=2)
            return f"its process ended with status {self.proc.returncode}"
        return ""

    def _ask(self, request, fd=None, timeout=10.0):
        """Send ``request`` (None: only wait for the greeting, number 0) and
        return its answer (kind, value)."""
        number = 0
        if request is not None:
            number = next(self._ids)
            data = wire.dumps((number,) + request)
            if fd is None:
                self.ctl.send(data)
            else:
                socket.send_fds(self.ctl, [data], [fd])
        deadline = time.monotonic() + timeout + (_STARTUP if request is None else 0.0)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ctl], [], [], left)[0]:
                raise TimeoutError("the template did not answer")
            data = self.ctl.recv(1 << 20)
            if not data:
                raise wire.HostGone("the template is gone")
            try:
                msg = wire.safe_loads(data)
            except wire.ProtocolError:
                continue  # not the template's: the notebook's cells can write on its socket while they load
            if not (isinstance(msg, tuple) and len(msg) == 3 and isinstance(msg[1], str)):
                continue
            if msg[0] == 0 and msg[1] == "cell" and type(msg[2]) is int:
                if self.last_cell is None:  # the time limit is the cells': it starts with the first one
                    deadline = time.monotonic() + timeout
                self.last_cell = msg[2]  # loading: the cell it is running
                continue
            if msg[0] == number:
                return msg[1], msg[2]  # else: the answer to a request whose client was killed

    def spawn(self, cpu=None) -> tuple[int, socket.socket]:
        mine, theirs = socket.socketpair()
        try:
            with self.mu:
                kind, pid = self._ask(("spawn", cpu), fd=theirs.fileno())
        except (wire.HostGone, TimeoutError, wire.ProtocolError, OSError) as e:
            mine.close()
            raise NodeError(f"cannot start a node process: the template {type(e).__name__}: {e}") from None
        finally:
            theirs.close()
        if kind != "spawned" or type(pid) is not int or pid <= 0:
            mine.close()
            raise NodeError(f"cannot start a node process: {str(pid)[:2000]}")
        return pid, mine

    def kill(self, pid: int) -> None:
        with contextlib.suppress(wire.HostGone, TimeoutError, wire.ProtocolError, OSError), self.mu:
            self._ask(("kill", pid))

    def kill_all(self) -> None:
        """Kill every host this template forked (a grading run ended)."""
        with contextlib.suppress(wire.HostGone, TimeoutError, wire.ProtocolError, OSError), self.mu:
            self._ask(("killall",))

    def status(self, pid: int) -> str:
        try:
            with self.mu:
                kind, text = self._ask(("status", pid, 1.0), timeout=3.0)
            return text if isinstance(text, str) else "ended"
        except (wire.HostGone, TimeoutError, wire.ProtocolError, OSError):
            return "ended (its template is gone too)"

    def stacks(self, pid: int) -> dict[str, str]:
        """Every thread's stack in host ``pid``, as tracebacks (outermost
        first, with the code lines this process can see)."""
        try:
            with self.mu:
                kind, text = self._ask(("stacks", pid), timeout=6.0)
        except (wire.HostGone, TimeoutError, wire.ProtocolError, OSError):
            return {}
        return parse_faulthandler(text if isinstance(text, str) else "", self.sandbox)

    def alive(self) -> bool:
        if os.getpid() != self.owner:  # a forked run uses its parent's template
            return True
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.ctl.close()
        if os.getpid() != self.owner:
            return
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=2)
        for f in (self.proc.stdin,):
            if f:
                with contextlib.suppress(OSError):
                    f.close()


_FRAME = re.compile(r'File "(.*)", line (\d+) in (.*)')


def parse_faulthandler(text: str, sandbox=None) -> dict[str, str]:
    """faulthandler's dump (innermost frame first, no code) as one Python
    traceback per thread; the kit's files inside a sandbox are named as
    this process sees them."""
    import linecache
    kit_inside = None if sandbox is None else sandbox.kit_inside()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    threads: dict[str, list] = {}
    frames: list | None = None
    for line in text.splitlines():
        if line.startswith(("Thread ", "Current thread ")):
            frames = threads.setdefault(f"{line.split(' (most recent')[0]} of the node", [])
            continue
        m = _FRAME.search(line)
        if m and frames is not None:
            filename = m.group(1)
            if kit_inside and filename.startswith(kit_inside):
                filename = here + filename[len(kit_inside):]
            frames.append((filename, int(m.group(2)), m.group(3)))
    out = {}
    for name, fr in threads.items():
        lines = []
        for filename, lineno, func in reversed(fr):
            lines.append(f'  File "{filename}", line {lineno}, in {func}\n')
            code = linecache.getline(filename, lineno).strip()
            if code:
                lines.append(f"    {code}\n")
        out[name] = "".join(lines)
    return out


_TEMPLATES: dict = {}
_TEMPLATES_MU = threading.Lock()


def template_for(spec, sandbox=None, load_timeout: float = 60.0, kit: str | None = None) -> Template:
    """The warm template for ``spec`` (started on first use, then kept);
    ``kit``: the ``raftkit`` package folder it imports (default: this one)."""
    key = (spec, None if sandbox is None else sandbox.key(), kit)
    with _TEMPLATES_MU:
        t = _TEMPLATES.get(key)
        if t is None or not t.alive():
            _TEMPLATES.pop(key, None)
            t = Template(spec, sandbox=sandbox, load_timeout=load_timeout, kit=kit)
            _TEMPLATES[key] = t
        return t


@atexit.register
def close_templates() -> None:
    with _TEMPLATES_MU:
        for t in _TEMPLATES.values():
            t.close()
        _TEMPLATES.clear()


# --------------------------------------------------------------------------
# One node host, seen from the trusted side
# --------------------------------------------------------------------------

def _run_task(host: NodeHost, tid: int) -> None:
    """The twin of a host thread: it runs while its thread runs."""
    host.job("run", tid)


def _decoded(packet):
    """The message in ``packet`` (``messages.encode``), read without running
    code; None if it cannot be read. A packet's message is read once: a
    request is read again by the prediction of its reply, and this side
    made most packets it reads (``_known``). Predictions only read messages."""
    known = type(packet) is tuple and len(packet) == 2 and type(packet[0]) is bytes and type(packet[1]) is bool
    if known and (message := _DECODED.get(packet, _UNREAD)) is not _UNREAD:
        return message
    try:
        message = decode(*packet, loads=wire.safe_loads)
    except Exception:  # whatever a node sent: only a prediction is lost
        message = None
    if known:
        _known(packet, message)
    return message


def _known(packet, message) -> None:
    """Keep ``message`` as what ``packet`` holds (small packets, the latest few hundred)."""
    if len(packet[0]) <= _DECODED_BYTES:
        if len(_DECODED) >= _DECODED_MOST:
            _DECODED.clear()
        _DECODED[packet] = message


_DECODED: dict = {}  # packet -> its message (decoding is a function of the bytes alone)
_DECODED_MOST, _DECODED_BYTES = 512, 8192
_UNREAD = object()


@functools.lru_cache(maxsize=256)
def _accepted(term: int) -> tuple:
    """A follower's success reply in ``term``: the message, its packet and
    its summary (made once: a steady cluster sends the same ones again)."""
    reply = AppendEntriesReply(term, True)
    return reply, encode(reply), summarize(reply)


def _sent(beat) -> tuple:
    """The packet and summary of AppendEntries ``beat``; a heartbeat's made once."""
    if beat.entries:
        return encode(beat), summarize(beat)
    return _heartbeat(beat.term, beat.leader_id, beat.prev_log_index, beat.prev_log_term, beat.leader_commit)


@functools.lru_cache(maxsize=1024)
def _heartbeat(term: int, leader: int, prev: int, prev_term: int, commit: int) -> tuple:
    beat = AppendEntriesArgs(term, leader, prev, prev_term, [], commit)
    return encode(beat), summarize(beat)


def _miss(frame) -> str | None:
    """What a host's "miss" frame (bytes, or read) says: a silent tick's
    thread did more than tick (host.Host._as_predicted); None if it is not one."""
    if type(frame) is bytes:
        try:
            frame = wire.safe_loads(frame)
        except wire.ProtocolError:
            return None
    if not (isinstance(frame, tuple) and frame[:1] == ("miss",)):
        return None
    return f"a tick predicted idle did more ({str(frame[2] if len(frame) > 2 else '?')[:200]})"


def _check(cond, what):
    if not cond:
        raise wire.ProtocolError(what)


def _text(value, what, limit=_MAX_TEXT) -> str:
    if type(value) is not str:  # (the message is made only when it is needed)
        raise wire.ProtocolError(f"{what} must be a string")
    return value[:limit]


def _index(value, what):
    if not (type(value) is _INT and value >= 0):
        raise wire.ProtocolError(f"{what} must be an int >= 0")
    return value


class NodeHost:
    """The connection to one node incarnation's process."""

    runs_ahead = True  # predicted frames may run in it while the scheduler goes on (see _eager)

    def __init__(self, nodes: ProcessNodes, i: int, service, storage, proxy):
        self.nodes, self.i, self.service, self.storage, self.proxy = nodes, i, service, storage, proxy
        c = nodes.cluster
        self.clock, self.bus, self.recorder = c.clock, c.bus, c.recorder
        self.timeout = nodes.timeout
        self.template = nodes.template
        # A predicting cluster's nodes catch up on their predicted frames on a core of their own, if
        # the clock has one to spare: the scheduler goes on meanwhile (see _eager).
        spare = self.clock._spare_cpu if nodes.predict and self.runs_ahead else None
        self.eager = spare is not None
        self.pid, self.sock = self.template.spawn(self.clock._cpu if spare is None else spare)
        # a read waits at most _SLICE (SO_RCVTIMEO): waiting and reading are one system call
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, int(_SLICE * 1e6)))
        self.fd = self.sock.fileno()
        self.reader = wire.Reader(self.fd)
        self.channels: list = []
        self.shared: dict = {}
        self.keys = itertools.count(1)
        self.deferred: list[bytes] = []    # frames for the host, written with the next one that waits
        self.expected: list[tuple] = []    # (what, frame) the deferred calls, handlers and replies bring back
        #                                    (as sent: its length, then its pickle)
        self.unconfirmed = 0               # deferred frames written ahead (_eager) since the last that waits
        self.timers: dict[int, tuple] = {}  # a ticker thread's (term, timeout) at its first tick, by job
        self.loops: dict[int, tuple | None] = {}  # ("heartbeats", its term) or ("applier", None), by job
        self.snapshot_waits = storage is not None and bool(storage.read_snapshot())  # its applier may deliver one first
        self.last_id = 0                   # the last thread or value number the host handed out, as its frames tell
        self.presumed: collections.deque = collections.deque()  # frames of a predicted step, taken as read
        self.round_sent = False            # a heartbeat round's answer waits among the deferred frames
        self.applier_channel = None        # the channel the applier waits on
        self.trigger_channel = None        # the channel a leader's heartbeat loop waits on
        self.encoded: tuple = ([], [])     # entries of the mirror's log, and each one's pickle (_saved_state)
        self.ahead: dict[int, int] = {}    # task id -> job key of a turn sent ahead, not yet run here
        self.turn_task = None              # the task whose turn runs (it alone may send while turns are ahead)
        self.first_ahead = None            # the job key of a turn sent ahead whose first frame is awaited
        self.told_free = False             # what the host was told of clock.runs_freely()
        self.silent = False                # silent ticks sent since the last "sync" (see _idle_ticks)
        self.spawned: list = []            # threads the turn running now started (host.Host._started)
        self.unstarted: set = set()        # threads started whose twin has not run yet
        self.last = "starting"
        self.dead: BaseException | None = None

    # -- jobs -------------------------------------------------------------------
    def job(self, what: str, payload=None):
        """Run ``what`` in the host (a node thread's turn, a handler, a call)
        and serve its requests until it ends; returns its result."""
        if self.dead is not None:
            raise self.dead
        first = payload[0] if type(payload) is tuple and payload else None
        if type(first) in (str, tuple) and (first in _SNAPSHOT_PENDS or first[:1] == ("restore",)):
            self.snapshot_waits = True  # (perhaps) one for the applier to deliver at its next wake
        if what == "run":
            self.unstarted.discard(payload)
            if payload in self.ahead:  # its turn went with the one before it
                self.turn_task = self.clock._current
                self.first_ahead = key = self.ahead.pop(payload)
                return self._serve(key, what)
        if self.ahead and self.clock._current is not self.turn_task:
            raise self._mispredict("a frame came for it before the turns sent ahead to it ran")
        key = next(self.keys)
        now, in_node = self.clock.now(), self.clock.in_node_thread()
        ahead = self._turns_ahead(now, in_node) if what == "run" else ()
        if ahead:
            self.turn_task = self.clock._current
        try:
            self._send(("job", key, now, in_node, what, payload), ahead=ahead)
        except wire.HostGone:
            raise self._fail(None) from None
        return self._serve(key, what)

    def call(self, name: str, *args, **kwargs):
        return self.call_path((name,), args, kwargs)

    def call_path(self, path: tuple, args, kwargs):
        args = tuple(wire.Ref(a.path) if isinstance(a, _Remote) and a.host is self else
                     self._share(a) if type(a) in (list, dict) else a for a in args)
        return self.job("call", (path, args, kwargs))

    def _share(self, obj):
        """A list or dict handed to node code: one object in the host for
        this one here, its contents copied back with every report."""
        key = id(obj)
        self.shared[key] = obj  # kept alive: its id stays its key
        return wire.Shared((key, obj))

    def get_path(self, path: tuple):
        """The value at ``node.<path>`` in the host, or a ``_Remote`` for a
        method or an object that cannot be copied out."""
        answer = self.job("getattr", path)
        if not (isinstance(answer, tuple) and len(answer) == 2 and answer[0] in ("missing", "value", "method",
                                                                               "object")):
            raise NodeError(f"node {self.i}'s process answered {answer!r:.80} when asked for .{'.'.join(path)}")
        kind, value = answer
        if kind == "missing":
            raise AttributeError(f"node {self.i} has no attribute {'.'.join(path)!r}")
        return value if kind == "value" else _Remote(self, path)

    def _serve(self, key, what):
        try:
            return self._serve_frames(key, what)
        except wire.ProtocolError as e:
            raise self._fail(NodeError(f"node {self.i}'s process broke the protocol: {e}")) from None

    def _serve_frames(self, key, what):
        pending = None
        while True:
            since = time.monotonic()
            msg = self._recv()
            kind = msg[0]
            while kind == "post":  # posts alone are no progress: a loop of emits is as stuck as a bare loop
                self._post(msg)
                if msg[2] == "go" and what == "run" and msg[1] == key:
                    self.spawned.append(msg[3][0])
                if time.monotonic() - since > self.timeout:
                    raise self._stuck()
                msg = self._recv()
                kind = msg[0]
            if msg[1] != key:
                raise wire.ProtocolError(f"a frame for job {msg[1]!r} while job {key} runs")
            self.first_ahead = None
            if kind == "end":
                _check(len(msg) == 5, "a bad end frame")
                self.timers.pop(key, None)
                self.loops.pop(key, None)
                self._mirror(msg[4])
                if what == "run":
                    self._started(True)
                if pending is not None:
                    raise pending
                if msg[3] is not None:
                    raise self._error(msg[3], what)
                return msg[2]
            if not (kind == "req" and len(msg) == 5 and type(msg[2]) is str and type(msg[3]) is tuple):
                _check(kind == "req" and len(msg) == 5, "a bad request frame")
                raise wire.ProtocolError("a bad request")
            _, _, op, args, report = msg
            self.last = f"{op}()"
            if report is not None:
                self._mirror(report)
            if op in _BLOCKING:
                self._started(op in YIELDS and args and args[-1] is None)
            error, ahead, switches = None, bool(self.ahead) and op in _BLOCKING, self.clock._switches
            try:
                if op == "tick" and key not in self.timers:
                    self._start_timer(key)
                if op == "recv" and what == "run" and key not in self.loops:
                    self.loops[key] = self._loop()
                    if self.loops[key] is not None and type(args[0]) is _INT and args[0] < len(self.channels):
                        if self.loops[key][0] == "applier":
                            self.applier_channel = args[0]  # commit_ready: a commit wakes it (_commits)
                        else:
                            self.trigger_channel = args[0]  # trigger_ae: a submit wakes it (predicted_submit)
                value = self._request(op, args)
                if ahead and op in YIELDS and self.clock._switches == switches:
                    raise self._mispredict(f"its {op}() answered at once, but a turn sent ahead ran after it")
                if op == "tick":
                    value = self._idle_ticks(key, args[0], value)
            except Killed:
                with contextlib.suppress(wire.HostGone, wire.ProtocolError, OSError):
                    self._send(("reply", key, self.clock.now(), None, "killed"), settle=False)
                raise  # the node is crashing or the clock stopping: do not wait for it
            except (wire.ProtocolError, Mispredicted):
                raise
            except BaseException as e:
                if ahead and self.clock._switches == switches:
                    raise self._mispredict(f"its {op}() failed at once, but a turn sent ahead ran after it") from None
                pending, value, error = e, None, (type(e).__name__, str(e)[:_MAX_TEXT])
            ended = op == "call" and what == "run" and pending is None and self._ends_after_reply(key, args, value)
            if ended == "commits":
                continue  # as if its frames came: the commit's note, its applier woken, its end
            if ended:
                self.timers.pop(key, None)
                self._started(True)
                return None  # as if its end came (it comes with the next frame, and is compared then)
            loop = self.loops.get(key) if op == "recv" and pending is None else None
            if loop is not None and (self._heartbeat_round(key, args, value, loop[1]) if loop[0] == "heartbeats"
                                     else self._applier_wakes(key, args, value)):
                continue  # as if its frames came (they come with the next ones, and are compared then)
            try:
                self._send(("reply", key, self.clock.now(), value, error))
            except wire.HostGone:
                raise self._fail(None) from None

    # -- predicted ticks ---------------------------------------------------------
    # Half the turns of a node are its election timer's ticks, and nearly all
    # of them only tick again (Figure 2: no leader heard from yet). While the
    # mirror says that this tick will find the timeout not yet passed, in the
    # role and the term this timer started in, the tick's turn is not sent: it
    # waits, as a "tick" frame, until the next frame the host gets, and this
    # side ticks on as if the tick had come back. Every deferred tick still
    # runs in the host, at its time, in its order. If its thread's next frame
    # is the tick request predicted, the host does not send it (a *silent*
    # tick); anything else, and the host sends a "miss" first. Before a run's
    # result is taken (``mispredicted``) or a node is killed, the host says
    # that it has read everything ("sync"). A tick that did something else
    # fails the run (``Mispredicted``), and the grader runs it again without
    # predictions: a run's result is always the strict one. (A node process
    # that hides a miss gains nothing: the run is then that of a node that
    # only ticked, which a node could do as well in a strict run.)
    def _idle_ticks(self, key, interval, due):
        """Tick on while the next tick of job ``key`` is predicted idle;
        returns the value for the first tick that is not. The scheduler
        takes each idle tick at its time, in its order, without switching
        to this thread (``clock.sleep_again``)."""
        next_due = [due]

        def idle_tick():
            """The delay until the tick after this one, if this one is idle; else None."""
            if not self._idle(key):
                return None
            now, due = self.clock.now(), next_due[0]
            self.deferred.append(wire.frame(("tick", key, now, due, interval)))
            self.silent = True
            self.nodes.predicted += 1
            self._eager()
            due = next_tick(now, due, interval)
            next_due[0] = due + interval
            return due - now

        delay = idle_tick()
        while delay is not None:
            self.clock.sleep_again(delay, idle_tick)
            delay = idle_tick()  # (woken: the tick is not idle, or it sleeps here, as a loop would)
        return next_due[0]

    def _start_timer(self, key) -> None:
        """A ticker thread's first tick: the term its timer started in, and
        its timeout (``self.timeout`` as the reference sets it; a timer that
        keeps it to itself waits at least the shortest the config allows)."""
        p, shortest = self.proxy, self.nodes.cluster.config.election_timeout[0]
        self.timers[key] = (p.current_term, p.timeout if p.timeout > 0 else shortest)

    def _predicting(self) -> bool:
        """Whether this run predicts, and nothing so far stops it."""
        return self.nodes.predict and not (self.shared or self.nodes.mispredicted)

    def _may_defer(self) -> bool:
        """Whether a frame may wait for the next one (a bounded batch:
        neither side ever waits to write while the other writes too)."""
        return (self._predicting() and len(self.expected) < _DEFERRED
                and len(self.deferred) < _DEFERRED and len(self.deferred) + self.unconfirmed < _UNCONFIRMED)

    def _may_predict(self) -> bool:
        """Whether a call, a handler or a reply may be deferred now: the node
        lives, and no turn sent ahead to it waits to run."""
        return self.dead is None and not self.ahead and self._may_defer()

    def _defer(self, msg, what: str, end, posts=()) -> None:
        """Send ``msg`` with the next frame; its answer must be ``posts``
        (performed here now, as they would be when they came), then ``end``."""
        self.deferred.append(wire.frame(msg))
        self.expected.extend((what, wire.frame(frame)) for frame in (*posts, end))
        for post in posts:
            self._post(post)
        self._eager()

    def _eager(self) -> None:
        """On a core of its own, a host runs its predicted frames while the
        scheduler goes on: they are written a few at a time, not with the
        next frame that waits, and what they bring back is checked then, as
        always. (On the scheduler's core, the host could only run them while
        the scheduler waits: one write then, and one switch.)"""
        if self.eager and len(self.deferred) >= _EAGER:
            try:
                self._send(None, settle=False)
            except (wire.HostGone, OSError):  # gone: the next frame is sent for real, and _fail tells
                self.unconfirmed = _UNCONFIRMED

    def _idle(self, key) -> bool:
        """Whether the reference election timer, run now, would only tick again."""
        if not self._may_defer():
            return False
        term, timeout = self.timers[key]
        d = self.proxy.__dict__  # numbers, checked as they were mirrored
        return (d["state"] in _WAITING and d["current_term"] == term
                and self.clock.now() - d["election_reset_event"] < timeout)

    # The harness asks a node for its state (``get_state``), or a follower
    # to start agreement (``submit``), many times while nothing happens: the
    # reference answers from the fields the mirror holds, and changes
    # nothing. Such a call is predicted like a tick: it runs in the host
    # with the next frame, and its end is compared when the host answers.
    def predicted_call(self, name: str, args: tuple, value):
        """``value`` if the call ``name(*args)`` is deferred on the
        prediction that it returns ``value`` and changes nothing; else None."""
        if not self._may_predict() or any(type(a) in (list, dict, _Remote) for a in args):
            return None
        key = next(self.keys)
        self._defer(("job", key, self.clock.now(), self.clock.in_node_thread(), "call", ((name,), args, {})),
                    f"{name}()", ("end", key, value, None, len(self.proxy.log)))
        self.nodes.predicted_calls += 1
        return value

    # RPCs whose outcome the mirror tells (rpcs.py): a follower's handler of
    # a heartbeat, and a thread's reading of a reply, are deferred like ticks.
    def predicted_heartbeat(self, method: str, packet):
        """The handler's answer to ``packet`` if it is deferred on the
        prediction that the follower accepts it and only resets its timer
        (and commits: then its note and its applier's wake-up are performed
        here now, as they would be when they came); else None."""
        if method != "append_entries" or not self._may_predict():
            return None
        p, args = self.proxy, _decoded(packet)
        accepted = rpcs.follower_accepts(p, args)
        if accepted is None or (args.entries and "appends" not in self.nodes.trusts):
            return None
        keep, new, commit = accepted
        if commit != p.commit_index and (self.applier_channel is None or "follower commits" not in self.nodes.trusts):
            return None
        if len(self.expected) + 4 > _DEFERRED:
            return None
        reply, packet_out, summary = _accepted(p.current_term)
        value = (packet_out, summary, True)
        _known(packet_out, reply)
        now = self.clock.now()
        entries = [LogEntry(e.term, e.command) for e in new]  # the mirror's (and _saved_state's: the same objects)
        new = [(e.term, e.command) for e in new]
        report = self._report_with(election_reset_event=now, commit_index=commit, log=(keep, new) if new else None)
        key = next(self.keys)
        posts = [] if commit == p.commit_index else self._commit_posts(key, commit)
        if new:  # its log changes, and it persists (raft.py)
            posts.append(("post", key, "save", (self._saved_state(p, p.log[:keep] + entries), None)))
        what = "an AppendEntries with entries" if args.entries else "heartbeat"
        self._defer(("job", key, now, self.clock.in_node_thread(), "handle", (method, packet)), what,
                    ("end", key, value, None, report), posts)
        self._mirror_own(report, entries)
        self.nodes.predicted_handlers += 1
        return value

    # A leader's submit (raft.py) appends the entry, persists, notes the
    # append and wakes its heartbeat loop: all of it is told by the mirror
    # (the bytes it persists are those of ``persist``), so the call is
    # predicted like a follower's, its posts performed here at once.
    def predicted_submit(self, command):
        """``(index, term, True)`` if the leader's ``submit(command)`` is
        deferred on that prediction; else None."""
        p, cid = self.proxy, self.trigger_channel
        if (p.state is not CMState.LEADER or not p.peer_ids or cid is None or type(command) not in (int, str)
                or "submits" not in self.nodes.trusts or not self._may_predict() or len(self.expected) + 4 > _DEFERRED):
            return None
        term, index, now = p.current_term, p.last_included_index + len(p.log) + 1, self.clock.now()
        key, entry = next(self.keys), LogEntry(term, command)
        posts = [("post", key, "save", (self._saved_state(p, p.log + [entry]), None)),
                 ("post", key, "emit", ("append", None, f"index={index} term={term} command={repr(command)[:40]}")),
                 ("post", key, "try_send", (cid, self.last_id + 1, self.channels[cid].has_room()))]
        value, report = (index, term, True), self._report_with(log=(len(p.log), [(term, command)]))
        self._defer(("job", key, now, self.clock.in_node_thread(), "call", (("submit",), (command,), {})), "submit()",
                    ("end", key, value, None, report), posts)
        self._mirror_own(report, [entry])
        self.nodes.predicted_calls += 1
        return value

    def _saved_state(self, p, log) -> bytes:
        """What ``persist`` saves for ``log`` and the mirror's fields (one
        pickle per entry, each made once and kept, as raft.py does)."""
        done, pickles = self.encoded
        if not extend_if_appended(done, log):
            k = next((i for i, (a, b) in enumerate(zip(log, done)) if a != b), min(len(done), len(log)))
            del done[k:], pickles[k:]
            done.extend(log[k:])
        pickles.extend(pickle.dumps((e.term, e.command), protocol=_PICKLE) for e in done[len(pickles):])
        header = pickle.dumps((p.current_term, p.voted_for, p.last_included_index, p.last_included_term, len(log)),
                              protocol=_PICKLE)
        return header + b"".join(pickles)

    def _commit_posts(self, key, n) -> list:
        """What job ``key`` posts when its node commits up to ``n`` (raft.py:
        a note, then its applier woken: a try_send numbered, and answered, as
        the host's copy of the channel would)."""
        cid = self.applier_channel
        return [("post", key, "emit", ("commit", None, f"commit_index={n}")),
                ("post", key, "try_send", (cid, self.last_id + 1, self.channels[cid].has_room()))]

    def _report_with(self, log=None, **changed):
        """The report the host sends when its node's mirrored values change
        by ``changed`` (fields, ``next_index``, ``match_index``), its log by
        ``log`` (``(keep, new)``: kept up to ``keep`` entries, ``new`` added),
        and nothing else does (``host.Host.report``)."""
        p = self.proxy
        d = p.__dict__
        # (the host sends four Nones when the values pickle as before: for these numbers, equal values of
        # one type; next_index and match_index come here only when they change, rpcs._moved_on)
        if all(k in _SCALARS and type(v) is type(d[k]) and v == d[k] for k, v in changed.items()):
            return len(p.log) if log is None else (None, None, None, None, *log, None)
        after = (p.state.value, tuple([changed.get(name, d[name]) for name in FIELDS]),
                 dict(changed.get("next_index", p.next_index)), dict(changed.get("match_index", p.match_index)))
        return after + ((len(p.log), (), None) if log is None else (*log, None))

    def _ends_after_reply(self, key, args, value) -> bool | str:
        """Whether the thread (job ``key``) that called ``args`` and got
        ``value`` is deferred on the prediction that it ends at once,
        changing at most ``match_index`` and ``next_index`` (rpcs.py); or
        "commits" if it commits too: then it notes the commit and wakes its
        applier first (raft.py: ``advance_commit_index``), and those frames
        and its end are taken as read (``_presume``)."""
        dst, method, packet = args[:3]
        if not self._may_predict():
            return False
        reply = None if value is None else _decoded(value)
        if value is not None and reply is None:
            return False
        changes = rpcs.reply_changes(self.proxy, dst, method, _decoded(packet), reply, lost=value is None)
        if changes is None:
            return False
        report = self._report_with(**changes)
        if "commit_index" in changes:
            return self._commits(key, value, method, changes["commit_index"], report)
        self._defer(("reply", key, self.clock.now(), value, None), f"the end after {method}'s reply",
                    ("end", key, None, None, report))
        self._mirror_own(report)
        self.nodes.predicted_replies += 1
        return True

    def _commits(self, key, value, method, n, report) -> bool | str:
        if ("leader commits" not in self.nodes.trusts or self.applier_channel is None
                or len(self.expected) + 3 > _DEFERRED):
            return False
        self._presume(key, value, f"the commit after {method}'s reply",
                      self._commit_posts(key, n) + [("end", key, None, None, report)])
        self.nodes.predicted_replies += 1
        return "commits"

    # A leader's heartbeat loop whose wait ends (a timeout, or a submit's
    # trigger) sends a round (rpcs.heartbeat_round): it starts a thread per
    # peer and waits again, and each thread calls its peer. When the clock
    # runs freely the host starts those threads itself, so what they all send
    # is known: the answer to the wait goes with the next frame, and the
    # frames the host will send (a "go" per thread, numbered as the host
    # numbers them, the same wait again, then each thread's call) are taken
    # as read now (``presumed``) and compared when they come. The calls'
    # replies are predicted as any (``_ends_after_reply``).
    def _loop(self):
        """("heartbeats", term) if the running thread is this leader's
        heartbeat loop, ("applier", None) if it is the node's applier, else None."""
        task, p = self.clock._current, self.proxy
        if task is not None and task.name.endswith(": run_applier"):
            return "applier", None
        if task is None or not task.name.endswith(": run_heartbeats") or p.state is not CMState.LEADER:
            return None
        return "heartbeats", p.current_term

    def _heartbeat_round(self, key, args, value, term) -> bool:
        """Whether the wait ``args`` of the heartbeat loop ``key`` of
        ``term``, answered ``value``, is deferred on the prediction that the loop sends a round."""
        if "rounds" not in self.nodes.trusts:
            return False
        woken = value == (None, False) or (type(value) is tuple and value[1] is True
                                           and not len(self.channels[args[0]]))
        if not woken or args[2] is not None or not self._may_predict() or not self.told_free or self.unstarted:
            return False  # (a wake with more queued reads it too: a try_recv)
        beats = rpcs.heartbeat_round(self.proxy, term)
        if beats is None or len(beats) > STARTED or len(self.expected) + 2 * len(beats) + 1 > _DEFERRED:
            return False
        report, name = self._report_with(), f"node {self.i}: send_append_entries"
        frames = [("post", key, "go", (self.last_id + k, name)) for k in range(1, len(beats) + 1)]
        frames.append(("req", key, "recv", args, report))
        frames += [("req", -(self.last_id + k), "call", (peer, "append_entries", *_sent(beat), None), report)
                   for k, (peer, beat) in enumerate(beats, 1)]
        self._presume(key, value, "a heartbeat round", frames, starts=True)
        self.nodes.predicted_rounds += 1
        return True

    # The applier (raft.py: ``run_applier``), woken by a commit, applies the
    # entries from ``last_applied + 1`` to ``commit_index``, which the mirror
    # holds, and waits again: its frames (an "apply" post per entry, then the
    # same wait) are predicted the same way, and the entries applied here at
    # once, as the posts would be. Not after a snapshot came (the applier
    # delivers it first), nor when an entry makes the service snapshot (an
    # apply that waits for its answer), nor when another wake is queued.
    def _applier_wakes(self, key, args, value) -> bool:
        """Whether the wait ``args`` of applier ``key``, answered ``value``,
        is deferred on the prediction that it applies what is committed."""
        if self.snapshot_waits:
            self.snapshot_waits = False  # (this wake delivers it)
            return False
        if "wakes" not in self.nodes.trusts:
            return False
        if getattr(self.service, "raftkit_nodes", None) is not None:
            return False  # a KV server: its process applies to its own store (kvhost.py)
        if not (type(value) is tuple and value[1] is True and args[1:] == (None, None) and self._may_predict()):
            return False
        p = self.proxy
        first, last, base = p.last_applied + 1, p.commit_index, p.last_included_index
        if (len(self.channels[args[0]]) or (first <= base and first <= last) or last > base + len(p.log)
                or len(self.expected) + last - first > 32):
            return False
        msgs = [ApplyMsg(True, p.log[index - base - 1].command, index) for index in range(first, last + 1)]
        if any(snapshot_due(self.nodes.cluster.snapshot_interval, msg) for msg in msgs):
            return False
        frames = [("post", key, "apply", (tuple(getattr(m, f) for f in _APPLY_FIELDS),)) for m in msgs]
        frames.append(("req", key, "recv", args, self._report_with(last_applied=max(p.last_applied, last))))
        self._presume(key, value, "an applier's wake", frames)
        self.nodes.predicted_wakes += 1
        return True

    def _presume(self, key, value, what: str, frames: list, starts: bool = False) -> None:
        """Defer the answer ``value`` to job ``key``, and take ``frames`` as
        what the host sends after it: read now, compared when they come
        (``starts``: they include those of threads the host starts then)."""
        self.deferred.append(wire.frame(("reply", key, self.clock.now(), value, None)))
        self.expected.extend((what, wire.frame(msg)) for msg in frames)
        self.presumed.extend(frames)
        self.round_sent = self.round_sent or starts
        self._eager()

    # A thread that starts a fan-out (a leader's heartbeat: a thread per peer)
    # leaves several new threads of its node ready at the same time, which the
    # scheduler runs one after the other, right after it yields. While the
    # clock runs freely (until a time, not event by event), the host starts
    # them itself as that turn yields (``_started``; it was told so with the
    # "free" frame). Otherwise their turns are sent together with the first
    # one's (``_turns_ahead``), and the host starts each when the one before
    # it waits in a request that yields (``YIELDS``) or ends, as the
    # scheduler does here. Either way each twin, when it runs, reads its
    # thread's frames without sending anything. Anything else sent to the
    # host first (the clock stopped between two of them), or a request that
    # did not yield, fails the prediction.
    def _turns_ahead(self, now, in_node) -> list:
        """Frames for the turns of this host's new threads that the scheduler
        runs next, right after this one."""
        if not self._may_defer():
            return []
        frames = []
        for task in self.clock.runs_next(self._fresh_twin, _AHEAD):
            key = next(self.keys)
            self.ahead[task.args[1]] = key
            frames.append(wire.frame(("job", key, now, in_node, "run", task.args[1])))
        self.nodes.turns_ahead += len(frames)
        return frames

    def _started(self, yields: bool) -> None:
        """The running turn yields (or blocks in ``send``): the threads it
        started, if it runs freely, have started in the host now
        (``host.Host._started``), numbered ``-tid``: each twin, when it runs,
        reads its thread's frames, as for a turn sent ahead."""
        spawned, self.spawned = self.spawned, []
        if yields and self.told_free and spawned and len(self.unstarted) == len(spawned):  # (none before them)
            self.turn_task = self.clock._current
            for tid in spawned[:STARTED]:
                self.ahead[tid] = -tid
            self.nodes.turns_ahead += min(len(spawned), STARTED)

    def _fresh_twin(self, task) -> bool:
        """Whether ``task`` is the twin of a thread of this host that has not run yet."""
        return task.fn is _run_task and task.args[0] is self and task.worker is None

    def _mispredict(self, why: str) -> Mispredicted:
        why = f"node {self.i}: {why}"
        self.nodes.mispredicted = self.nodes.mispredicted or why
        return Mispredicted(why)

    def _send(self, msg, settle: bool = True, ahead=()) -> None:
        """Write ``msg`` after the deferred frames and before the turns sent
        ahead, in one write; then check what the deferred frames brought back."""
        data = b"" if msg is None else wire.frame(msg)
        free = self._predicting() and self.clock.runs_freely()
        if free != self.told_free:  # before the frames it is for
            self.told_free = free
            data = wire.frame(("free", free, self.clock.now())) + data
        deferred = len(self.deferred)
        if self.deferred or ahead:
            self.deferred.append(data)
            self.deferred.extend(ahead)
            data = b"".join(self.deferred)
            self.deferred.clear()
        if data:
            wire.write(self.fd, data)
            self.round_sent = False
            # a frame that waits: the host answers it after every frame before it (or the wait fails)
            self.unconfirmed = 0 if msg is not None else self.unconfirmed + deferred
        if settle and self.expected:
            self._settle()

    def check_deferred(self) -> None:
        """Send the deferred frames and check what they bring back, and that
        every silent tick went as predicted (a failed prediction is kept in
        ``nodes.mispredicted``)."""
        if self.sock is None or not (self.deferred or self.expected or self.silent):
            return
        try:
            self._send(("sync", 0, self.clock.now()) if self.silent else None)
            if self.silent:
                self.silent = False
                self._settle_one("every silent tick", _SYNCED)
        except Mispredicted:
            pass
        except (wire.HostGone, OSError):  # it ended unnoticed: perhaps in a predicted frame
            if self.dead is None:
                why = f"node {self.i}: its process {self.template.status(self.pid)} before it confirmed its predictions"
                self.nodes.mispredicted = self.nodes.mispredicted or why

    def _settle(self) -> None:
        expected, self.expected = self.expected, []
        frames, k = [framed for _, framed in expected], 0
        while k < len(frames):
            k = self.reader.take_predicted(frames, k)  # those that came already, compared at once
            if k < len(frames):  # the next, waited for
                what = expected[k][0]
                self._settle_one(f"{what} (frame {k + 1} of {len(frames)} predicted)", frames[k][wire.HEADER:])
                k += 1

    def _settle_one(self, what: str, want: bytes) -> None:
        """Read the next frame, which must be ``want`` (its pickle)."""
        try:
            got = self._read()
        except wire.HostGone:
            got = f"no frame: the process {self.template.status(self.pid)}"
        except (TimeoutError, wire.ProtocolError) as e:
            got = f"no frame ({type(e).__name__})"
        if got != want:
            miss = _miss(got)
            why = (f"node {self.i}: {miss}" if miss else f"node {self.i}: predicted {what} brought back {got!r:.120}")
            self.nodes.mispredicted = why
            raise Mispredicted(why)

    def _read(self) -> bytes:
        """The next frame's bytes, read if it has not all arrived yet:
        ``timeout`` wall seconds for its start, as long again for the rest. Every ``_SLICE`` meanwhile
        the driver's watchdog is told that this thread waits on a node
        process (whose silence this wait times itself), so it is that node,
        with its stacks, that gets reported."""
        reader, started, deadline = self.reader, bool(self.reader.buf), None
        data = reader.take()
        while data is None:
            try:
                reader.read_ready()
            except BlockingIOError:  # _SLICE went by
                self.clock._switches += 1
                now = time.monotonic()
                if deadline is None:
                    deadline = now - _SLICE + self.timeout
                elif now >= deadline:
                    raise TimeoutError from None
                continue
            data = reader.take()
            if data is None and not started:
                started, deadline = True, time.monotonic() + self.timeout
        return data

    def _recv(self):
        if self.presumed:
            return self.presumed.popleft()
        try:
            if self.round_sent:  # the threads the round starts send their frames after the round's own
                self._send(None)
            msg = wire.safe_loads(self._read())
            if isinstance(msg, tuple) and msg[:1] == ("miss",) and self.nodes.predict:  # (strict: a bad frame)
                raise self._mispredict(_miss(msg))
            if not (isinstance(msg, tuple) and len(msg) >= 2 and msg[0] in _FRAMES):
                raise wire.ProtocolError("a frame that is not a request, a post or an end")
            return msg
        except TimeoutError:
            raise self._stuck() from None
        except wire.HostGone:
            raise self._fail(None) from None
        except wire.ProtocolError as e:
            raise self._fail(NodeError(f"node {self.i}'s process broke the protocol: {e}")) from None

    def _stuck(self):
        stacks = self._stacks()
        return self._fail(DeadlockError(
            f"node {self.i} ran for {self.timeout:.1f} s of wall time without reaching a kit primitive "
            f"(its last request: {self.last}). A thread of it is stuck in an infinite loop, or waiting on "
            "something outside the kit (a raw threading wait, or a lock another thread holds).", stacks))

    def _stacks(self) -> dict:
        """The host's stacks. Asking takes a moment on a loaded machine: the
        driver's watchdog is told meanwhile that this thread is reporting,
        not stuck."""
        got: dict = {}
        asking = threading.Thread(target=lambda: got.update(self.template.stacks(self.pid)), daemon=True)
        asking.start()
        while asking.is_alive():
            self.clock._switches += 1
            asking.join(0.05)
        return got

    def _fail(self, error):
        """The host is unusable: kill it, remember why (a failure while turns
        sent ahead, or silent ticks, are on their way may be theirs: a failed
        prediction; the strict run tells)."""
        if self.ahead or self.first_ahead is not None or self.silent:
            error = self._mispredict("it failed while turns sent ahead to it, or ticks predicted idle, ran "
                                     f"({error or 'its process ' + self.template.status(self.pid)})")
        elif error is None:
            error = NodeError(f"node {self.i}'s process {self.template.status(self.pid)} "
                              f"(its last request: {self.last})")
        self.dead = error
        self.kill()
        return error

    def _error(self, error, what):
        _check(isinstance(error, tuple) and len(error) == 2, "a bad error")
        kind, text = _text(error[0], "an error's kind", 100), _text(error[1], "an error's text")
        if kind == "DeadlockError":
            return DeadlockError(text)
        if what == "run" or kind == "NodeError":
            return NodeError(text)
        return {"ValueError": ValueError, "TypeError": TypeError, "RuntimeError": RuntimeError}.get(
            kind, NodeError)(text if kind in ("ValueError", "TypeError", "RuntimeError") else f"{kind}: {text}")

    def kill(self) -> None:
        self.ahead.clear()
        self.first_ahead = None
        self.presumed.clear()
        if self.sock is not None:
            self.check_deferred()  # they came before the kill
            self.template.kill(self.pid)
            self.sock.close()
            self.sock = None
        if self.dead is None:
            self.dead = NodeError(f"node {self.i}'s process was stopped")

    # -- what a host may ask ----------------------------------------------------
    def _request(self, op, args):
        clock = self.clock
        if op == "sleep":
            _check(len(args) == 2 and type(args[0]) is float and args[0] >= 0,  # NaN >= 0 is False
                   "sleep(dt >= 0, held)")
            with self._held(args[1], "sleep"):
                clock.sleep(args[0])
            return None
        if op == "tick":
            _check(len(args) == 3 and type(args[0]) is float and args[0] > 0 and type(args[1]) is float,
                   "tick(interval > 0, due, held)")
            with self._held(args[2], "tick"):
                return self._tick(args[0], args[1])
        if op in ("send", "recv"):
            _check(len(args) == 3, "send(channel, value, held) or recv(channel, timeout, held)")
            ch = self._channel(args[0])
            with self._held(args[2], op):
                if op == "send":
                    self.last_id = max(self.last_id, _index(args[1], "a channel value"))
                    return ch.send(args[1])
                timeout = args[1]
                _check(timeout is None or (type(timeout) in (int, float) and timeout >= 0), "recv(timeout)")
                return ch.recv(timeout)
        if op == "call":
            _check(len(args) == 5, "call(dst, method, packet, summary, held)")
            dst, method, packet, summary, held = args
            _check(type(dst) is _INT and 0 <= dst < len(self.bus.endpoints), "call: no such peer")
            _check(type(method) is str and method.isidentifier() and not method.startswith("_")
                   and len(method) <= 100, "call: a bad method name")
            _check(isinstance(packet, tuple) and len(packet) == 2 and type(packet[0]) is bytes
                   and type(packet[1]) is bool, "call: a bad packet")
            with self._held(held, "call"):
                return self.bus.call_encoded(self.i, dst, method, packet, _text(summary, "a summary"))
        if op == "apply":
            self._apply(args)
            return None
        raise wire.ProtocolError(f"an unknown request {op[:50]!r}")

    def _channel(self, cid):
        _check(type(cid) is _INT and 0 <= cid < len(self.channels), "a channel id")
        return self.channels[cid]

    def _tick(self, interval, due) -> float:
        """``Ticker.tick`` of a host's ticker: sleep until it is due; returns
        when the next tick is due."""
        now = self.clock.now()
        due = next_tick(now, due, interval)
        self.clock.sleep(due - now, label="tick")
        return due + interval

    def _apply(self, args):
        _check(len(args) == 1 and isinstance(args[0], tuple) and len(args[0]) == 7, "apply(msg)")
        cv, command, index, sv, snap, sterm, sindex = args[0]
        _check(type(cv) is bool and type(sv) is bool and all(type(v) is _INT for v in (index, sterm, sindex))
               and (snap is None or type(snap) is bytes), "apply: a bad ApplyMsg")
        self.service.apply(ApplyMsg(cv, command, index, sv, snap, sterm, sindex))

    def _post(self, msg):
        _check(len(msg) == 4 and type(msg[2]) is str and type(msg[3]) is tuple, "a bad post frame")
        op, args = msg[2], msg[3]
        if op == "go":
            _check(len(args) == 2, "go(tid, name)")
            tid, name = _index(args[0], "a task id"), _text(args[1], "a thread name", 200)
            self.last_id = max(self.last_id, tid)
            # a failure (a thread bomb, say) fails the run at once: the node asked for no answer
            self.clock.go(_run_task, self, tid, owner=self.proxy, name=name)
            self.unstarted.add(tid)
        elif op == "emit":
            _check(len(args) == 3, "emit(kind, peer, detail)")
            kind, peer, detail = args
            _check(peer is None or type(peer) is _INT, "emit: peer must be an int or None")
            self.recorder.record(_text(kind, "an event kind", 100), self.i, peer, _text(detail, "an event detail"))
        elif op == "apply":  # a service that never calls its node back: see host.Host._apply
            self._apply(args)
        elif op == "chan":
            _check(len(args) == 2 and args[0] == len(self.channels) and type(args[0]) is _INT
                   and (args[1] is None or (type(args[1]) is _INT and args[1] >= 1)), "chan(number, capacity)")
            _check(len(self.channels) < 100_000, "too many channels")
            self.channels.append(self.clock.channel(args[1]))
        elif op == "try_send":  # decided in the host on its copy of the channel (host.HostChannel): checked
            _check(len(args) == 3 and type(args[2]) is bool, "try_send(channel, value, ok)")
            self.last_id = max(self.last_id, _index(args[1], "a channel value"))
            if self._channel(args[0]).try_send(args[1]) is not args[2]:
                raise wire.ProtocolError(f"its copy of channel {args[0]} says try_send returned {args[2]}")
        elif op == "try_recv":
            _check(len(args) == 2, "try_recv(channel, value)")
            value, ok = self._channel(args[0]).try_recv()
            if not ok or value != args[1]:
                raise wire.ProtocolError(f"its copy of channel {args[0]} holds what the channel does not")
        elif op == "save":
            _check(len(args) == 2 and type(args[0]) is bytes and (args[1] is None or type(args[1]) is bytes),
                   "save(state, snapshot)")
            self.storage.save(args[0], args[1])
        else:
            raise wire.ProtocolError(f"an unknown post {op[:50]!r}")

    def _held(self, held, what):
        """The host held a guarded lock when it asked: the trusted twin holds
        the node's lock too, so the clock raises exactly where it would
        in-process, with the host's line (most requests: no lock, nothing to do)."""
        return _NO_LOCK if held is None else self._holding(held, what)

    @contextlib.contextmanager
    def _holding(self, held, what):
        _check(isinstance(held, tuple) and len(held) == 3, "a bad lock report")
        name, line, stack = (_text(v, "a lock report") for v in held)
        took = self.proxy.mu.acquire(False)
        try:
            yield
        except DeadlockError:
            task = self.clock._current
            who = task.name if task else f"node {self.i}"
            raise DeadlockError(
                f"{who} called {what}() while {name} was held. A lock must never be held across a blocking "
                f"call (sleep, ticker, channel, RPC): in Go this deadlocks every other thread that needs the "
                f"lock.\n  at {line}", {who: stack}) from None
        finally:
            if took:
                self.proxy.mu.release()

    def _mirror(self, report):
        """Copy what the host reported of its node onto the proxy."""
        p = self.proxy
        if type(report) is _INT:  # nothing changed but (perhaps) the log's length
            if report != len(p.log):
                self._mirror_log(p, report, ())
            return
        if report is None:  # no node yet (its constructor failed)
            return
        _check(isinstance(report, tuple), "a bad state report")
        if report and report[0] == "bad":
            raise NodeError(f"node {self.i}: {_text(report[1], 'a report')}")
        _check(len(report) == 7, "a bad state report")
        state, fields, next_index, match_index, keep, new, shared = report
        self._mirror_shared(shared)
        if (state, fields, next_index, match_index) != (None, None, None, None):  # four Nones: unchanged
            self._mirror_values(p, state, fields, next_index, match_index)
        self._mirror_log(p, keep, new)

    def _mirror_shared(self, shared):
        if shared is not None:
            _check(type(shared) is dict, "a bad report of shared objects")
            for key, value in shared.items():
                obj = self.shared.get(key)
                if type(obj) is list and type(value) is list:
                    obj[:] = value
                elif type(obj) is dict and type(value) is dict:
                    obj.clear()
                    obj.update(value)

    def _mirror_values(self, p, state, fields, next_index, match_index):
        member = _STATES.get(state) if type(state) is str else None  # a CMState's value: nothing else
        if member is None:
            raise wire.ProtocolError(f"node {self.i}'s self.state is {state!r:.50}, not a CMState")
        _check(isinstance(fields, tuple) and len(fields) == len(FIELDS), "a bad state report")
        if not all(map(frozenset.__contains__, _FIELD_TYPES, map(type, fields))):
            for name, value, types in zip(FIELDS, fields, _FIELD_TYPES):
                if type(value) not in types:
                    raise NodeError(f"node {self.i}'s self.{name} is {value!r:.50}, not a number")
        for d in (next_index, match_index):
            _check(type(d) is dict and _INTS.issuperset(map(type, d)) and _INTS.issuperset(map(type, d.values())),
                   "next_index / match_index must map ints to ints")
        self._set_values(p, member, fields, next_index, match_index)

    def _set_values(self, p, member, fields, next_index, match_index):
        d = p.__dict__
        d["state"] = member
        d.update(zip(FIELDS, fields))
        for name, value in (("next_index", next_index), ("match_index", match_index)):
            if value != d[name] or type(d[name]) is not _WriteThrough:  # ints, checked: equal is the same
                d[name] = _WriteThrough(self, name, value)

    def _mirror_log(self, p, keep, new):
        _check(type(keep) is _INT and 0 <= keep <= len(p.log) and isinstance(new, (tuple, list)),
               "a bad log report")
        for e in new:
            _check(isinstance(e, tuple) and len(e) == 2 and type(e[0]) is _INT, "a bad log entry")
        self._set_log(p, keep, new)

    @staticmethod
    def _set_log(p, keep, new, entries=None):
        if entries is None:
            entries = [LogEntry(term, command) for term, command in new]
        if keep == len(p.log):
            p.log.extend(entries)
        else:
            p.__dict__["log"] = p.log[:keep] + entries

    def _mirror_own(self, report, entries=None):
        """``_mirror`` for a report made here (``_report_with``, from the
        mirror's own values and the rules'): nothing in it to check.
        ``entries``: the ``LogEntry`` objects its new entries are, already
        made (``_saved_state`` then finds the same objects in the mirror's
        log, and compares them at C speed: equal values in other objects
        are compared by ``LogEntry.__eq__``, one Python call per entry)."""
        if type(report) is _INT:  # (its log unchanged)
            return
        state, fields, next_index, match_index, keep, new, _ = report
        p = self.proxy
        if state is not None:
            self._set_values(p, _STATES[state], fields, next_index, match_index)
        if new or keep != len(p.log):
            self._set_log(p, keep, new, entries)


# --------------------------------------------------------------------------
# The node as the harness sees it
# --------------------------------------------------------------------------

class NodeProxy:
    """A node that lives in another process: its fields are a mirror the
    host refreshes whenever one of its threads blocks or ends; its methods
    run in the host. Setting a mirrored field sets it in the host."""

    def __init__(self, i: int, peer_ids: list[int], node_class_name: str):
        d = self.__dict__
        d.update(id=i, peer_ids=list(peer_ids), mu=threading.Lock(), log=[], state=CMState.FOLLOWER,
                 next_index={}, match_index={}, _host=None, _class=node_class_name)
        d.update(dict.fromkeys(FIELDS, 0))
        d["voted_for"] = None

    def __setattr__(self, name, value):
        fn = getattr(value, "__func__", None)
        if getattr(value, "__self__", None) is self and getattr(fn, "__module__", "").startswith("raftkit."):
            import inspect
            import textwrap
            source = textwrap.dedent(inspect.getsource(fn))  # the host's kit may lack it (a student's view)
            self._host.job("setattr", (name, wire.Rebind((fn.__module__, fn.__qualname__, source))))
        elif name in _MIRRORED:
            self._host.job("setattr", (name, value))
        else:
            self.__dict__[name] = value

    def __getattr__(self, name):
        """A field the proxy does not mirror is read from the host; a method
        becomes a call into the host."""
        if name.startswith("_"):
            raise AttributeError(name)
        return self._host.get_path((name,))

    def go(self, fn, *args):
        """``node.go(node.method, ...)`` from the harness: the thread starts in the host."""
        self._host.call("go", fn, *args)

    def get_state(self) -> tuple[int, bool]:
        value = (self._host.predicted_call("get_state", (), (self.current_term, self.state is CMState.LEADER))
                 or self._host.call("get_state"))
        if not (isinstance(value, tuple) and len(value) == 2 and type(value[0]) is int and type(value[1]) is bool):
            raise NodeError(f"node {self.id}: get_state() returned {value!r:.80}, not (term, is_leader)")
        return value

    def submit(self, command):
        value = self._host.predicted_submit(command) if self.state is CMState.LEADER else self._host.predicted_call(
            "submit", (command,), (-1, self.current_term, False))
        value = value or self._host.call("submit", command)
        if not (isinstance(value, tuple) and len(value) == 3 and type(value[0]) is int and type(value[1]) is int
                and type(value[2]) is bool):
            raise NodeError(f"node {self.id}: submit() returned {value!r:.80}, not (index, term, is_leader)")
        return value

    def start(self):
        self._host.call("start")

    def stop(self):
        self._host.call("stop")

    def handle_encoded(self, method: str, packet: tuple):
        """Run RPC handler ``method`` in the host (the bus calls this). A
        handler the harness set on this proxy (``node.append_entries =
        lambda args: reply``, a scenario's canned answer) runs here instead,
        on the request decoded without running code."""
        override = self.__dict__.get(method)
        if callable(override):
            try:
                args = decode(*packet, loads=wire.safe_loads)
            except (wire.ProtocolError, TypeError, ValueError, IndexError) as e:
                raise NodeError(f"a request for node {self.id}'s {method} that cannot be read: {e}") from None
            reply = override(args)
            return (encode(reply), summarize(reply) if reply is not None else "None",
                    getattr(reply, "vote_granted", getattr(reply, "success", None)))
        answer = self._host.predicted_heartbeat(method, packet) or self._host.job("handle", (method, packet))
        if not (isinstance(answer, tuple) and len(answer) == 3 and isinstance(answer[0], tuple)
                and len(answer[0]) == 2 and type(answer[0][0]) is bytes and type(answer[0][1]) is bool
                and type(answer[1]) is str and answer[2] in (None, True, False)):
            raise NodeError(f"node {self.id}: a bad reply from its {method} handler")
        return answer[0], answer[1][:_MAX_TEXT], answer[2]

    def __repr__(self):
        return (f"<{self._class} {self.id} (own process) {self.state} term={self.current_term} "
                f"log={self.last_included_index + len(self.log)} commit={self.commit_index}>")


_MIRRORED = set(FIELDS) | {"state", "log", "next_index", "match_index"}


class _Remote:
    """Something reached through a node in a host: a method (call it) or
    an object whose fields and methods are reached the same way."""

    def __init__(self, host: NodeHost, path: tuple):
        self.host, self.path = host, path
        self.__name__ = path[-1]

    def __call__(self, *args, **kwargs):
        return self.host.call_path(self.path, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.host.get_path(self.path + (name,))

    def __repr__(self):
        return f"<node {self.host.i}'s {'.'.join(self.path)} (in its process)>"


class _WriteThrough(dict):
    """A mirrored dict (``next_index``, ``match_index``): writes to it from
    the harness are made in the host too (``node.match_index[3] = 4``)."""

    def __init__(self, host, name, items):
        super().__init__(items)
        self._host, self._name = host, name

    def __setitem__(self, key, value):
        self._host.job("setitem", (self._name, key, value))

    def __delitem__(self, key):
        self._host.job("delitem", (self._name, key))

    def update(self, *args, **kwargs):
        for k, v in dict(*args, **kwargs).items():
            self[k] = v


def safe_service(service_class: type) -> type:
    """The service class for isolated nodes: a snapshot arrives from a node
    process, so the recording service reads it without running code. Other
    services (the KV server) unpickle what nodes hand them: a service made
    for node processes (``kvprocess.HostedKVService``) says so."""
    if getattr(service_class, "raftkit_nodes", None) is not None:
        return service_class
    if service_class is not Service:
        raise ValueError('isolation="process" runs with the recording service only (service_class=Service); '
                         "for the KV service, use KVCluster(..., isolation=\"process\")")

    class SafeService(Service):
        def restore(self, data: bytes) -> None:
            self.commands = wire.safe_loads(data) if data else {}
    return SafeService


class ProcessNodes:
    """The cluster's node processes: one host per node incarnation."""

    def __init__(self, cluster, sandbox=None):
        sandbox = sandbox if sandbox is not None else getattr(cluster.node_class, "raftkit_sandbox", None)
        if not cluster.virtual:
            raise ValueError('isolation="process" needs the virtual clock')
        self.cluster = cluster
        self.timeout = cluster.clock.watchdog  # a node process that stays silent this long is stuck
        self.template = template_for(class_spec(cluster.node_class), sandbox,
                                     kit=getattr(cluster.node_class, "raftkit_kit", None))
        self.hosts: list[NodeHost | None] = [None] * cluster.n
        self.predict = getattr(cluster.node_class, "raftkit_predict", False)
        written = getattr(cluster.node_class, "raftkit_written", frozenset())
        self.trusts = {kind for kind, methods in _OWN.items() if written.isdisjoint(methods)}  # see _OWN
        self.mispredicted: str | None = None
        self.predicted = 0  # ticks deferred on a prediction
        self.predicted_calls = 0  # get_state() and a follower's submit(), the same way
        self.predicted_handlers = 0  # heartbeats a follower accepts without change
        self.predicted_replies = 0  # replies read that change little (rpcs.py)
        self.predicted_rounds = 0  # a leader's heartbeat rounds (rpcs.heartbeat_round)
        self.predicted_wakes = 0  # an applier's wakes
        self.turns_ahead = 0  # turns sent with the one before them

    def make(self, i: int, service, storage, rng_seed: str):
        c = self.cluster
        peers = [j for j in range(c.n) if j != i]
        proxy = NodeProxy(i, peers, getattr(c.node_class, "__name__", "node"))
        host = NodeHost(self, i, service, storage, proxy)
        proxy.__dict__["_host"] = host
        self.hosts[i] = host
        host.timeout = max(self.timeout, _STARTUP)  # a new process on a loaded machine: its first answer
        try:
            host.job("construct", (i, peers, c.config, rng_seed, storage.read_state(), storage.read_snapshot(),
                                   c.snapshot_interval))
        finally:
            host.timeout = self.timeout
        return proxy

    def settle(self) -> str | None:
        """Check what every deferred tick brought back (see ``mispredicted``)."""
        for host in self.hosts:
            if host is not None:
                host.check_deferred()
        return self.mispredicted

    def kill(self, i: int) -> None:
        host = self.hosts[i]
        if host is not None:
            host.kill()

    def close(self) -> None:
        for host in self.hosts:
            if host is not None:
                host.kill()
