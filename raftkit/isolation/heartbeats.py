"""Heartbeats predicted: what the reference node does with a leader's empty
AppendEntries, decided on the trusted side's mirror of each node.

Most RPCs of a steady cluster are heartbeats that change nothing: the
follower, in the leader's term, with the entry at ``prevLogIndex`` and
nothing new to commit, only resets its election timer and answers success
(Figure 2, receiver rules 1-5); the leader, reading that answer, finds
nothing to advance. Both are predicted like idle ticks (``process.py``):
the handler's turn and the reply's go to the node processes with their next
frame, and what comes back is compared, byte for byte, with what the
reference would have sent. Anything else fails the prediction, and the run
is graded on its strict rerun.

Every function here reads a ``NodeProxy``'s mirrored fields, never a node.
"""

from __future__ import annotations

from ..messages import AppendEntriesArgs, AppendEntriesReply, CMState


def _last_index(p) -> int:
    return p.last_included_index + len(p.log)


def _term_at(p, index: int) -> int:
    """The term of entry ``index``, which the mirror holds (or its snapshot's last)."""
    return p.last_included_term if index == p.last_included_index else p.log[index - p.last_included_index - 1].term


def _heartbeat(args) -> bool:
    """Whether ``args`` (from a node: anything) is an empty AppendEntries of plain ints."""
    return (type(args) is AppendEntriesArgs and args.entries == [] and type(args.term) is int
            and type(args.prev_log_index) is int and type(args.prev_log_term) is int
            and type(args.leader_commit) is int)


def follower_accepts_unchanged(p, args) -> bool:
    """Whether follower ``p`` answers heartbeat ``args`` with success and
    changes nothing but its election timer."""
    if not (_heartbeat(args) and p.state is CMState.FOLLOWER and args.term == p.current_term):
        return False
    prev = args.prev_log_index
    if not (p.last_included_index <= prev <= _last_index(p) and _term_at(p, prev) == args.prev_log_term):
        return False  # rule 2 fails, or the skip into the snapshot
    return not (args.leader_commit > p.commit_index and prev > p.commit_index)  # rule 5: nothing to commit


def leader_reads_unchanged(p, dst: int, args, reply) -> bool:
    """Whether leader ``p``, reading ``reply`` (None: lost) to heartbeat
    ``args`` it sent to ``dst``, changes nothing the mirror holds and sends
    nothing: no newer term, ``match_index`` and ``next_index`` as they are,
    no commit to advance, and ``dst`` has every entry (nothing to send it
    at once)."""
    if not _heartbeat(args):
        return False
    if reply is None:
        return True  # lost: it only forgets the request
    if not (type(reply) is AppendEntriesReply and reply.success is True and type(reply.term) is int
            and reply.term <= p.current_term and p.state is CMState.LEADER and p.current_term == args.term):
        return False
    match, next_ = p.match_index.get(dst), p.next_index.get(dst)
    if match is None or next_ is None or args.prev_log_index > match or next_ < match + 1:
        return False
    if next_ <= _last_index(p):
        return False
    return not _would_commit(p)


def _would_commit(p) -> bool:
    """Whether the leader's commit rule (§5.4.2) would advance its commit index now."""
    matches = sorted([_last_index(p)] + [p.match_index.get(q, 0) for q in p.peer_ids], reverse=True)
    n = matches[len(matches) // 2]
    if n <= p.commit_index:
        return False
    return n <= p.last_included_index or _term_at(p, n) == p.current_term  # (in the snapshot: not predicted)
