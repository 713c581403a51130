"""Persisted state of one node: the Raft state and the snapshot, saved together.

``save(state, snapshot)`` replaces both at once, as MIT's Persister does.
``save_log(header, log, unchanged, snapshot)`` saves the state
``header + log`` when the first ``unchanged`` bytes of ``log`` are those it
saved last time: in memory only the rest is copied, so a log that grows
costs what it grew, not its whole length (a file is still rewritten whole).
``MemoryStorage`` keeps bytes in memory; ``FileStorage`` writes one file with
write-to-temp, fsync, atomic rename and a directory fsync, so a crash at any
moment leaves either the old or the new pair, and a new process recovers it
(a checksum refuses a file damaged otherwise).

A crash *detaches* the storage object the dead incarnation holds: whatever it
tries to save afterwards is dropped, exactly like MIT's ``Persister.Copy()``.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib

__all__ = ["Storage", "MemoryStorage", "FileStorage"]


def _check_bytes(name, value):
    if value is not None and not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes or None, got {type(value).__name__}")


class Storage:
    """Interface: ``save``, ``save_log``, ``read_state``, ``read_snapshot``,
    sizes, ``detach`` (the crash) and ``reopen`` (the restart)."""

    _SPOT = 16  # save_log compares this many bytes before ``unchanged`` with what it holds

    def __init__(self):
        self._state: bytes | None = b""  # None: it is ``_head + _body``, joined when read
        self._head = b""
        self._body: bytearray | None = None  # the log part of the last save_log (None after a save)
        self._snapshot = b""
        self._detached = False
        self._mu = threading.Lock()

    def save(self, state: bytes, snapshot: bytes | None = None) -> None:
        """Replace the Raft state, and the snapshot if given (None keeps it)."""
        _check_bytes("state", state)
        _check_bytes("snapshot", snapshot)
        with self._mu:
            if self._detached:
                return  # a crashed incarnation: its writes are lost
            snapshot = self._snapshot if snapshot is None else bytes(snapshot)
            self._write(bytes(state), snapshot)
            self._state, self._snapshot = bytes(state), snapshot
            self._head, self._body = b"", None

    def save_log(self, header: bytes, log: bytes, unchanged: int, snapshot: bytes | None = None) -> None:
        """``save(header + log, snapshot)`` for a state that ends in a log,
        where the first ``unchanged`` bytes of ``log`` are the first bytes of
        the ``log`` of the last ``save_log``: only the bytes after them are
        copied. ``unchanged`` is a promise about what is held: if the last
        write was a ``save`` or the bytes just before ``unchanged`` differ
        from what is held, the whole log is copied instead."""
        _check_bytes("header", header)
        _check_bytes("log", log)
        _check_bytes("snapshot", snapshot)
        if not isinstance(unchanged, int) or isinstance(unchanged, bool) or not 0 <= unchanged <= len(log):
            raise ValueError(f"unchanged must be an int between 0 and len(log)={len(log)}, got {unchanged!r}")
        with self._mu:
            if self._detached:
                return
            body = self._body
            lo = max(0, unchanged - self._SPOT)
            if body is None or unchanged > len(body) or body[lo:unchanged] != log[lo:unchanged]:
                body, unchanged = None, 0  # not what is held: copy it all
            added = bytes(memoryview(log)[unchanged:])
            snapshot = None if snapshot is None else bytes(snapshot)
            self._write_log(bytes(header), unchanged if body is not None else None, added, snapshot)
            if body is None:
                body = self._body = bytearray()
            del body[unchanged:]
            body += added
            self._head, self._state = bytes(header), None
            if snapshot is not None:
                self._snapshot = snapshot

    def read_state(self) -> bytes:
        state = self._state
        if state is None:
            with self._mu:
                state = self._state
                if state is None:
                    state = self._state = self._head + self._body
        return state

    def read_snapshot(self) -> bytes:
        return self._snapshot

    def state_size(self) -> int:
        state = self._state
        return len(self._head) + len(self._body) if state is None else len(state)

    def snapshot_size(self) -> int:
        return len(self._snapshot)

    def detach(self) -> None:
        """The node crashed: drop every later write through this object."""
        with self._mu:
            self._detached = True

    def reopen(self) -> Storage:
        """A fresh object over the same persisted contents (for a restart)."""
        raise NotImplementedError

    def _write(self, state: bytes, snapshot: bytes) -> None:
        """Make ``save`` durable (in memory: nothing to do)."""

    def _write_log(self, header: bytes, keep: int | None, added: bytes, snapshot: bytes | None) -> None:
        """Make ``save_log`` durable: the log's first ``keep`` bytes stay
        (None: none, ``added`` is the whole log), then ``added``."""


class MemoryStorage(Storage):
    """Persisted state in memory: survives crashes, not the process."""

    def __init__(self, state: bytes = b"", snapshot: bytes = b""):
        super().__init__()
        self._state, self._snapshot = state, snapshot

    def reopen(self):
        return MemoryStorage(self.read_state(), self._snapshot)


class FileStorage(Storage):
    """Persisted state in one file ``path``: atomic replace + fsync.

    File layout: ``RAFTKIT1``, then big-endian state length (8 bytes),
    snapshot length (8 bytes) and CRC-32 of both (4 bytes), then the state
    and the snapshot. A file that does not add up is refused with a
    ValueError naming it, never read as garbage.
    """

    MAGIC = b"RAFTKIT1"
    _HEADER = struct.Struct(">QQI")
    HEADER_SIZE = len(MAGIC) + _HEADER.size

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                self._state, self._snapshot = self.decode(f.read(), self.path)

    def __repr__(self):
        return f"FileStorage({self.path!r})"

    @classmethod
    def encode(cls, state: bytes, snapshot: bytes) -> bytes:
        crc = zlib.crc32(snapshot, zlib.crc32(state))
        return cls.MAGIC + cls._HEADER.pack(len(state), len(snapshot), crc) + state + snapshot

    @classmethod
    def decode(cls, blob: bytes, path: str = "<bytes>") -> tuple[bytes, bytes]:
        def bad(why):
            return ValueError(f"{path} is not a readable raftkit state file: {why}")
        if len(blob) < cls.HEADER_SIZE or not blob.startswith(cls.MAGIC):
            raise bad("no RAFTKIT1 header")
        n_state, n_snap, crc = cls._HEADER.unpack_from(blob, len(cls.MAGIC))
        if cls.HEADER_SIZE + n_state + n_snap != len(blob):
            raise bad(f"{len(blob)} bytes, the header announces {cls.HEADER_SIZE + n_state + n_snap}")
        state = blob[cls.HEADER_SIZE:cls.HEADER_SIZE + n_state]
        snapshot = blob[cls.HEADER_SIZE + n_state:]
        if zlib.crc32(snapshot, zlib.crc32(state)) != crc:
            raise bad("checksum mismatch (the file is damaged)")
        return state, snapshot

    def reopen(self):
        return FileStorage(self.path)

    def _write_log(self, header, keep, added, snapshot):
        # The whole file is rewritten (one atomic replace, as for save): an
        # fsync per write costs more than the copy it would save.
        log = added if keep is None else self._body[:keep] + added
        self._write(header + log, self._snapshot if snapshot is None else snapshot)

    def _write(self, state, snapshot):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.encode(state, snapshot))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)  # atomic: readers see the old or the new file
        fd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(fd)  # make the rename itself durable
        finally:
            os.close(fd)
