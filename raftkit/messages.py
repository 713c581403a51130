"""The data Raft nodes exchange: log entries, RPC arguments and replies
(Figure 2 of the paper), and the messages a node delivers to its service."""

from __future__ import annotations

import enum
import operator
import pickle
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "CMState", "LogEntry", "ApplyMsg",
    "RequestVoteArgs", "RequestVoteReply",
    "AppendEntriesArgs", "AppendEntriesReply",
    "InstallSnapshotArgs", "InstallSnapshotReply", "summarize", "encode", "decode",
]


class CMState(enum.Enum):
    FOLLOWER = "Follower"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    DEAD = "Dead"

    def __str__(self):
        return self.value


# LogEntry and ApplyMsg are made for every command on every node: they have
# slots (less than half the memory of an instance dict) and a written-out
# ``__init__`` that stores each field through its slot's own setter
# (object.__setattr__ by name, which a frozen dataclass's generated __init__
# calls, takes about 40% longer). Fields, defaults, repr, equality, hashing,
# pickling and immutability stay the dataclass's; tests/test_bus.py checks it.
def slot_setters(cls) -> tuple:
    """The ``__set__`` of each field's slot of the slotted dataclass ``cls``, in field order."""
    return tuple(cls.__dict__[name].__set__ for name in cls.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class LogEntry:
    term: int
    command: Any

    def __init__(self, term: int, command: Any):
        set_term, set_command = _LOG_ENTRY_SETTERS
        set_term(self, term)
        set_command(self, command)


@dataclass(frozen=True, slots=True)
class ApplyMsg:
    command_valid: bool
    command: Any
    command_index: int
    snapshot_valid: bool = False
    snapshot: bytes | None = None
    snapshot_term: int = 0
    snapshot_index: int = 0

    def __init__(self, command_valid: bool, command: Any, command_index: int, snapshot_valid: bool = False,
                 snapshot: bytes | None = None, snapshot_term: int = 0, snapshot_index: int = 0):
        a, b, c, d, e, f, g = _APPLY_MSG_SETTERS
        a(self, command_valid)
        b(self, command)
        c(self, command_index)
        d(self, snapshot_valid)
        e(self, snapshot)
        f(self, snapshot_term)
        g(self, snapshot_index)


_LOG_ENTRY_SETTERS = slot_setters(LogEntry)
_APPLY_MSG_SETTERS = slot_setters(ApplyMsg)


@dataclass(frozen=True)
class RequestVoteArgs:
    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True)
class RequestVoteReply:
    term: int
    vote_granted: bool


@dataclass(frozen=True)
class AppendEntriesArgs:
    term: int
    leader_id: int
    prev_log_index: int
    prev_log_term: int
    entries: list
    leader_commit: int


@dataclass(frozen=True)
class AppendEntriesReply:
    term: int
    success: bool
    conflict_index: int = 0
    conflict_term: int = 0


@dataclass(frozen=True)
class InstallSnapshotArgs:
    term: int
    leader_id: int
    last_included_index: int
    last_included_term: int
    data: bytes


@dataclass(frozen=True)
class InstallSnapshotReply:
    term: int


_SUMMARIZERS: dict[type, Callable[[Any], str]] = {}


def summarize(message) -> str:
    """A one-line description: ``AppendEntries term=2 prev_log_index=3 ... entries=[2]``."""
    summarizer = _SUMMARIZERS.get(type(message))
    if summarizer is None:
        summarizer = _SUMMARIZERS[type(message)] = _summarizer(type(message))
    return summarizer(message)


def _summarizer(cls) -> Callable[[Any], str]:
    try:
        names = [f.name for f in fields(cls)]
    except TypeError:  # not a dataclass
        return _short_repr
    title = cls.__name__[:-4] if cls.__name__.endswith("Args") else cls.__name__
    template = " ".join([title] + [f"{name}={{}}" for name in names])
    values = _values(cls)
    return lambda message: template.format(*[v if type(v) in _PLAIN else _short(v) for v in values(message)])


_PLAIN = {int, bool, str, float, type(None)}


def _short(value):
    """Collections by their size, everything else as itself."""
    if isinstance(value, (list, tuple)):
        return f"[{len(value)}]"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return value


def _short_repr(message) -> str:
    text = repr(message)
    return text if len(text) <= 80 else text[:77] + "..."


def _values(cls):
    """A function giving the tuple of a message's field values."""
    names = [f.name for f in fields(cls)]
    if not names:
        return lambda message: ()
    get = operator.attrgetter(*names)
    return get if len(names) > 1 else lambda message: (get(message),)


# ------------------------------------------------------------ wire format
# The bus copies every message by serializing it. A Raft message travels as
# its type's number and its field values, with log entries as (term, command)
# pairs: pickling the dataclasses themselves takes about 1.5 times as long and
# five times the bytes. Anything else (a KV request, a student's own type)
# is pickled as it is.
_PICKLE = pickle.HIGHEST_PROTOCOL
_COMPACT = (RequestVoteArgs, RequestVoteReply, AppendEntriesArgs, AppendEntriesReply,
            InstallSnapshotArgs, InstallSnapshotReply)
_VALUES = {cls: (tag, _values(cls)) for tag, cls in enumerate(_COMPACT)}
_AE = _COMPACT.index(AppendEntriesArgs)
# where entries sit in the wire tuple, after the tag
_ENTRIES = 1 + [f.name for f in fields(AppendEntriesArgs)].index("entries")


def encode(message) -> tuple[bytes, bool]:
    """``(data, compact)``: ``message`` serialized; ``compact`` says which
    form ``decode`` must read."""
    spec = _VALUES.get(type(message))
    if spec is None:
        return pickle.dumps(message, protocol=_PICKLE), False
    tag, values = spec
    wire = (tag,) + values(message)
    if tag == _AE:
        entries = wire[_ENTRIES]
        if not (isinstance(entries, list) and all(type(e) is LogEntry for e in entries)):
            return pickle.dumps(message, protocol=_PICKLE), False
        wire = wire[:_ENTRIES] + ([(e.term, e.command) for e in entries],) + wire[_ENTRIES + 1:]
    return pickle.dumps(wire, protocol=_PICKLE), True


def decode(data: bytes, compact: bool, loads: Callable[[bytes], Any] = pickle.loads):
    """A fresh copy of the message ``encode`` serialized (``loads``: how to
    unpickle it; a process that must not trust the bytes passes a safe one)."""
    if not compact:
        return loads(data)
    tag, *values = loads(data)
    if tag == _AE:
        values[_ENTRIES - 1] = [LogEntry(term, command) for term, command in values[_ENTRIES - 1]]
    return _COMPACT[tag](*values)
