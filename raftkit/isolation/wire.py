"""Frames between the trusted process and a node host: length-prefixed
pickles, read with bounds.

The trusted side sends ordinary pickles (a host trusts its grader). What it
reads back it never trusts: a frame longer than ``MAX_FRAME`` is refused
before it is read, and it is unpickled by ``safe_loads``, which builds only
plain data (numbers, strings, bytes, tuples, lists, dicts, sets) and the kit's
message dataclasses: no other class, no function, nothing that runs code.
Anything else is a ``ProtocolError``, which the caller reports as that
node's failure.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import struct
import time

__all__ = ["Ref", "Shared", "Rebind", "MAX_FRAME", "HEADER", "ProtocolError", "HostGone", "Reader", "frame", "write",
           "send", "safe_loads", "dumps"]

MAX_FRAME = 64 << 20          # bytes in one frame, either way
_HEADER = struct.Struct(">I")
_PACK = _HEADER.pack
HEADER = _HEADER.size  # bytes before a frame's pickle: its length
_PICKLE = pickle.HIGHEST_PROTOCOL

# (module, name) a host's frame may name: the kit's plain message types
_ALLOWED = {("raftkit.messages", name) for name in (
    "CMState", "LogEntry", "ApplyMsg", "RequestVoteArgs", "RequestVoteReply", "AppendEntriesArgs",
    "AppendEntriesReply", "InstallSnapshotArgs", "InstallSnapshotReply")} | {
    ("raftkit.kv", name) for name in ("KVOp", "KVReply")} | {
    ("builtins", name) for name in ("set", "frozenset", "bytearray", "complex", "range", "slice")} | {
    ("copyreg", "_reconstructor"), ("builtins", "object")}


class Ref(tuple):
    """Trusted to host: "the object at this attribute path of your node"
    (a method passed to ``node.go``, say)."""


class Shared(tuple):
    """Trusted to host: (key, value) of a list or dict the harness passes to
    node code; the host keeps one object per key, so that two calls share it
    as they would in one process (``votes`` handed to two reply threads),
    and reports its contents back."""


class Rebind(tuple):
    """Trusted to host: (module, qualname) of a kit function to bind to the
    node in place of its own method (a scenario that wants the reference)."""


class ProtocolError(Exception):
    """A host sent something that is not a valid frame."""


class HostGone(Exception):
    """The host's end of the pipe closed (it exited or was killed)."""


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise ProtocolError(f"a frame names {module}.{name}, which may not cross the trust boundary")
        return super().find_class(module, name)


def safe_loads(data: bytes):
    """Unpickle data from an untrusted host (see the module's docstring)."""
    try:
        return _SafeUnpickler(io.BytesIO(data)).load()
    except ProtocolError:
        raise
    except Exception as e:  # truncated, garbage, recursion, ...
        raise ProtocolError(f"an unreadable frame ({type(e).__name__}: {str(e)[:200]})") from None


def dumps(obj) -> bytes:
    return pickle.dumps(obj, protocol=_PICKLE)


def frame(obj) -> bytes:
    """``obj`` as one frame: its length, then its pickle."""
    data = pickle.dumps(obj, protocol=_PICKLE)
    n = len(data)
    if n > MAX_FRAME:
        raise ProtocolError(f"a frame of {n} bytes, over the limit of {MAX_FRAME}")
    return _PACK(n) + data


def write(fd: int, data: bytes) -> None:
    """Write frames (blocking; EPIPE means the other side is gone)."""
    try:
        written = os.write(fd, data)
        if written < len(data):  # a big frame: the rest as the reader takes it
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(fd, view):]
    except (BrokenPipeError, ConnectionResetError):
        raise HostGone("the other side closed the pipe") from None


def send(fd: int, obj) -> None:
    """Write one frame."""
    write(fd, frame(obj))


class Reader:
    """The frames arriving on ``fd``, read ahead: one system call takes
    whatever the other side wrote, often several frames at once.
    ``trusted=True`` (a host reading its grader) unpickles normally."""

    def __init__(self, fd: int, *, trusted: bool = False):
        self.fd, self.trusted = fd, trusted
        self.buf = bytearray()

    def read_ready(self) -> None:
        """Take in what has arrived on ``fd``, up to the rest of the frame
        that has begun (a blocking read: it waits for something to arrive,
        as long as the socket's ``SO_RCVTIMEO``, if one is set)."""
        self._fill(None, self._missing())

    def _missing(self) -> int:
        """Bytes still to come of the frame that has begun (0: none begun)."""
        buf = self.buf
        return _HEADER.size + _HEADER.unpack_from(buf)[0] - len(buf) if len(buf) >= _HEADER.size else 0

    def take(self) -> bytes | None:
        """The next frame's bytes if all of it has arrived, else None
        (``ProtocolError`` as soon as its length is over the limit)."""
        buf = self.buf
        if len(buf) < _HEADER.size:
            return None
        end = _HEADER.size + _HEADER.unpack_from(buf)[0]
        if end > _HEADER.size + MAX_FRAME:
            raise ProtocolError(f"a frame announces {end - _HEADER.size} bytes, over the limit of {MAX_FRAME}")
        if len(buf) < end:
            return None
        data = bytes(memoryview(buf)[_HEADER.size:end])
        del buf[:end]
        return data

    def take_predicted(self, frames: list, start: int = 0) -> int:
        """Take the frames that have all arrived, from ``frames[start]`` on
        (each as sent: its length, then its pickle), if they are those, in
        one comparison; returns the index of the first frame not taken
        (``start``: they differ, or none has all arrived)."""
        buf, size, end = self.buf, 0, start
        while end < len(frames) and size + len(frames[end]) <= len(buf):
            size, end = size + len(frames[end]), end + 1
        if end == start or not buf.startswith(b"".join(frames[start:end])):
            return start
        del buf[:size]
        return end

    def has_frame(self) -> bool:
        buf = self.buf
        return len(buf) >= _HEADER.size and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf)[0]

    def recv(self, timeout: float | None = None):
        """The next frame: ``TimeoutError`` if none starts within ``timeout``
        seconds (the rest of a frame gets the same bound again), ``HostGone``
        at end of file, ``ProtocolError`` for a bad frame."""
        deadline = None if timeout is None else time.monotonic() + timeout
        begun = False
        while (data := self.take()) is None:
            if not begun and len(self.buf) >= _HEADER.size:
                begun = True
                if timeout is not None:
                    deadline = time.monotonic() + timeout
            self._fill(deadline, self._missing() or _HEADER.size - len(self.buf))
        return pickle.loads(data) if self.trusted else safe_loads(data)

    def _fill(self, deadline, wanted: int = 0) -> None:
        """Read what has arrived (waiting until ``deadline``, if one is
        given, for something to arrive)."""
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([self.fd], [], [], wait)[0]:
                raise TimeoutError
        try:
            chunk = os.read(self.fd, min(max(wanted, 1 << 16), 1 << 20))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise HostGone("the other side closed the pipe")
        self.buf += chunk
