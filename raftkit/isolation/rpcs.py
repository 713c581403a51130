"""RPCs predicted: what the reference node does with a heartbeat it gets,
and with a reply it reads, decided on the trusted side's mirror of the node.

Most RPCs of a steady cluster change little. A follower in the leader's
term, with the entry at ``prevLogIndex``, accepts an AppendEntries by
resetting its election timer, appending what it lacks, committing by rule 5
and answering success (Figure 2, receiver rules 1-5). A leader or candidate reading a reply that
is lost, or that brings no newer term, either ignores it or moves
``matchIndex`` and ``nextIndex`` on, as long as no commit follows and no
vote counts. Such a handler's or reader's turn is predicted like an idle
tick (``process.py``): it goes to the node process with its next frame,
and what comes back is compared, byte for byte, with what the reference
would have sent. Anything else fails the prediction, and the run is graded
on its strict rerun.

Every function here reads a ``NodeProxy``'s mirrored fields, never a node,
and takes what a node sent (``args``, ``reply``) as anything at all.
"""

from __future__ import annotations

from ..messages import (
    AppendEntriesArgs,
    AppendEntriesReply,
    CMState,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    LogEntry,
    RequestVoteArgs,
    RequestVoteReply,
)

_ARGS = {"append_entries": AppendEntriesArgs, "request_vote": RequestVoteArgs, "install_snapshot": InstallSnapshotArgs}
_REPLIES = {"append_entries": AppendEntriesReply, "request_vote": RequestVoteReply,
            "install_snapshot": InstallSnapshotReply}
_NUMBERS = {AppendEntriesArgs: ("term", "prev_log_index", "prev_log_term", "leader_commit"),
            RequestVoteArgs: ("term",), InstallSnapshotArgs: ("term", "last_included_index"),
            AppendEntriesReply: ("term",), RequestVoteReply: ("term",), InstallSnapshotReply: ("term",)}


def _plain(message, cls) -> bool:
    """Whether ``message`` is a ``cls`` whose numbers are ints."""
    return type(message) is cls and all(type(getattr(message, name)) is int for name in _NUMBERS[cls])


def _last_index(p) -> int:
    return p.last_included_index + len(p.log)


def _term_at(p, index: int) -> int:
    """The term of entry ``index``, which the mirror holds (or its snapshot's last)."""
    return p.last_included_term if index == p.last_included_index else p.log[index - p.last_included_index - 1].term


def follower_accepts(p, args) -> tuple[int, list, int] | None:
    """What follower ``p`` does with an AppendEntries ``args`` that it
    accepts (Figure 2, receiver rules 2-5), besides resetting its election
    timer: ``(keep, new, commit)``, its log kept up to ``keep`` entries and
    ``new`` appended (``new`` empty: its log stays as it is, and it persists
    nothing), and its commit index after (if that commits, it notes it and
    wakes its applier). None if it would do more (a newer term, a role to
    change), reject it, skip into its snapshot, or if the mirror cannot tell."""
    if not (_plain(args, AppendEntriesArgs) and type(args.entries) is list
            and all(type(e) is LogEntry and type(e.term) is int for e in args.entries)
            and p.state is CMState.FOLLOWER and args.term == p.current_term):
        return None
    prev, entries, base = args.prev_log_index, args.entries, p.last_included_index
    if not (base <= prev <= _last_index(p) and _term_at(p, prev) == args.prev_log_term):
        return None  # rule 2 fails, or the skip into the snapshot
    index, k = prev + 1, 0  # rules 3 and 4: entries that already match stay
    while k < len(entries) and index <= _last_index(p) and _term_at(p, index) == entries[k].term:
        index, k = index + 1, k + 1
    last_new = prev + len(entries)  # rule 5: commitIndex = min(leaderCommit, index of last new entry)
    commit = min(args.leader_commit, last_new) if args.leader_commit > p.commit_index < last_new else p.commit_index
    return index - base - 1, entries[k:], commit


def reply_changes(p, dst: int, method: str, args, reply, lost: bool) -> dict | None:
    """What node ``p`` changes in its mirrored fields when the thread that
    called ``method(args)`` on ``dst`` reads ``reply`` (``lost``: none came)
    and ends: ``{}``, ``next_index`` and ``match_index`` moved on, and
    ``commit_index`` if that commits (then it also notes the commit and
    wakes its applier), or None if the reference would do more (take a
    newer term, count a vote, back ``nextIndex`` up and retry), or if it
    cannot be told."""
    cls = _ARGS.get(method)
    if cls is None or not _plain(args, cls):
        return None
    if lost:
        return {}  # it only forgets the request
    if not (_plain(reply, _REPLIES[method]) and reply.term <= p.current_term):
        return None  # a newer term: it steps down
    if method == "request_vote":
        if p.state is CMState.CANDIDATE and p.current_term == args.term and reply.vote_granted is not False:
            return None  # a vote that counts (the count is not mirrored)
        return {}
    if not (p.state is CMState.LEADER and p.current_term == args.term):
        return {}  # an old term's reply
    old_match, old_next = p.match_index.get(dst), p.next_index.get(dst)
    if type(old_match) is not int or type(old_next) is not int:
        return None
    if method == "install_snapshot":  # it has everything up to the snapshot's last entry
        return _moved_on(p, dst, max(old_match, args.last_included_index),
                         max(old_next, args.last_included_index + 1))
    if reply.success is not True or not isinstance(args.entries, list):
        return None  # nextIndex backs up, and it retries at once
    match = max(old_match, args.prev_log_index + len(args.entries))  # matchIndex never goes back
    changes = _moved_on(p, dst, match, max(old_next, match + 1))
    n = _committed(p, changes.get("match_index", p.match_index))
    if n is None:
        return None
    if n > p.commit_index:
        changes["commit_index"] = n  # it commits, and wakes its applier
    return changes


def _moved_on(p, dst: int, match: int, next_: int) -> dict:
    """The changes of ``matchIndex[dst]`` and ``nextIndex[dst]`` to ``match`` and ``next_``."""
    if (match, next_) == (p.match_index[dst], p.next_index[dst]):
        return {}
    return {"match_index": {**p.match_index, dst: match}, "next_index": {**p.next_index, dst: next_}}


def _committed(p, match_index) -> int | None:
    """The leader's commit index after its commit rule (§5.4.2) runs: the
    highest index stored on a majority if it is of the current term; None
    if the mirror cannot tell (in the snapshot, or past the log)."""
    matches = sorted([_last_index(p)] + [match_index.get(q, 0) for q in p.peer_ids], reverse=True)
    n = matches[len(matches) // 2]
    if n <= p.commit_index:
        return p.commit_index
    if not p.last_included_index < n <= _last_index(p):
        return None
    return n if _term_at(p, n) == p.current_term else p.commit_index




MAX_ENTRIES = 4096  # raft.py: ConsensusModule.max_entries, the most one AppendEntries carries


def heartbeat_round(p, term: int) -> list[tuple[int, AppendEntriesArgs]] | None:
    """The AppendEntries a leader's loop of ``term`` sends when its wait
    ends (raft.py: ``run_heartbeats``, ``send_heartbeats``), as ``(peer,
    args)`` in the order of its threads: to each peer the entries from its
    ``nextIndex`` on, none if it is up to date. None if the loop would end
    instead (no longer leader of its term), or send a snapshot, or if the
    mirror cannot tell."""
    if not (p.state is CMState.LEADER and p.current_term == term):
        return None
    base, last = p.last_included_index, _last_index(p)
    beats = []
    for peer in p.peer_ids:
        ni = p.next_index.get(peer)
        if not (type(ni) is int and base < ni <= last + 1):
            return None  # a snapshot to send, or a nextIndex past the log
        prev = ni - 1
        entries = p.log[prev - base:prev - base + MAX_ENTRIES]
        beats.append((peer, AppendEntriesArgs(term, p.id, prev, _term_at(p, prev), entries, p.commit_index)))
    return beats
