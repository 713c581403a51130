"""The data Raft nodes exchange: log entries, RPC arguments and replies
(Figure 2 of the paper), and the messages a node delivers to its service."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "CMState", "LogEntry", "ApplyMsg",
    "RequestVoteArgs", "RequestVoteReply",
    "AppendEntriesArgs", "AppendEntriesReply",
    "InstallSnapshotArgs", "InstallSnapshotReply", "summarize",
]


class CMState(enum.Enum):
    FOLLOWER = "Follower"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    DEAD = "Dead"

    def __str__(self):
        return self.value


@dataclass(frozen=True)
class LogEntry:
    term: int
    command: Any


@dataclass(frozen=True)
class ApplyMsg:
    command_valid: bool
    command: Any
    command_index: int
    snapshot_valid: bool = False
    snapshot: bytes | None = None
    snapshot_term: int = 0
    snapshot_index: int = 0


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


_FIELDS: dict[type, tuple] = {}


def summarize(message) -> str:
    """A one-line description: ``AppendEntries term=2 prev_log_index=3 ... entries=[2]``."""
    cls = type(message)
    names = _FIELDS.get(cls)
    if names is None:
        try:
            names = _FIELDS[cls] = tuple(f.name for f in fields(message))
        except TypeError:  # not a dataclass
            text = repr(message)
            return text if len(text) <= 80 else text[:77] + "..."
    parts = [cls.__name__[:-4] if cls.__name__.endswith("Args") else cls.__name__]
    for name in names:
        value = getattr(message, name)
        if isinstance(value, (list, tuple)):
            value = f"[{len(value)}]"
        elif isinstance(value, (bytes, bytearray)):
            value = f"<{len(value)} bytes>"
        parts.append(f"{name}={value}")
    return " ".join(parts)
