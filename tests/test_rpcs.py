"""The rules by which the grader predicts RPCs (raftkit/isolation/rpcs.py),
on a mirror written by hand: each case is what the reference node does."""

from types import SimpleNamespace

from raftkit.isolation.rpcs import follower_accepts, heartbeat_round, reply_changes
from raftkit.messages import (
    AppendEntriesArgs,
    AppendEntriesReply,
    CMState,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    LogEntry,
    RequestVoteArgs,
    RequestVoteReply,
)


def mirror(state=CMState.LEADER, term=3, log_terms=(1, 2, 3, 3), commit=2, match=None, next_=None):
    """A 3-node leader (node 0) of ``term`` with entries 1-4 of ``log_terms``."""
    return SimpleNamespace(id=0, state=state, current_term=term, commit_index=commit, last_included_index=0,
                           last_included_term=0, log=[LogEntry(t, f"c{k}") for k, t in enumerate(log_terms)],
                           peer_ids=[1, 2], match_index=match or {1: 2, 2: 2}, next_index=next_ or {1: 3, 2: 3})


def ae(prev=2, prev_term=2, entries=(), commit=2, term=3):
    return AppendEntriesArgs(term, 0, prev, prev_term, [LogEntry(3, "x") for _ in entries], commit)


def accepts_unchanged(p, args) -> bool:
    """Whether follower ``p`` answers ``args`` with success, changing nothing but its election timer."""
    accepted = follower_accepts(p, args)
    return accepted is not None and accepted[1:] == ([], p.commit_index)


def commit_after(p, args):
    """The commit index of follower ``p`` after it accepts heartbeat ``args`` (None: it does more)."""
    accepted = follower_accepts(p, args)
    return None if accepted is None or args.entries else accepted[2]


def test_a_follower_accepts_a_heartbeat_unchanged_only_when_nothing_else_happens():
    follower = mirror(state=CMState.FOLLOWER)
    assert accepts_unchanged(follower, ae())
    assert not accepts_unchanged(follower, ae(term=4))            # a newer term: it adopts it
    assert not accepts_unchanged(follower, ae(prev_term=1))       # rule 2 fails
    assert not accepts_unchanged(follower, ae(prev=9, prev_term=3))  # past its log
    assert not accepts_unchanged(follower, ae(prev=4, prev_term=3, commit=4))  # rule 5 commits
    assert not accepts_unchanged(follower, ae(prev=4, prev_term=3, entries=[1]))  # an entry to append
    assert not accepts_unchanged(mirror(state=CMState.CANDIDATE), ae())  # it becomes follower
    assert not accepts_unchanged(follower, AppendEntriesArgs(3.0, 0, 2, 2, [], 2))  # not plain ints
    assert not accepts_unchanged(follower, "garbage")


def test_a_follower_commits_from_a_heartbeat_up_to_the_entry_the_heartbeat_matched():
    follower = mirror(state=CMState.FOLLOWER)  # entries 1-4, commit 2
    assert commit_after(follower, ae()) == 2                                  # nothing to commit
    assert commit_after(follower, ae(prev=4, prev_term=3, commit=4)) == 4     # rule 5
    assert commit_after(follower, ae(prev=3, prev_term=3, commit=4)) == 3     # no further than it matched
    assert commit_after(follower, ae(prev=4, prev_term=2, commit=4)) is None  # rule 2 fails
    assert commit_after(follower, ae(entries=[1], commit=4)) is None          # entries to append
    assert commit_after(mirror(), ae(prev=4, prev_term=3, commit=4)) is None  # not a follower


def test_a_follower_appends_what_it_lacks_and_keeps_what_matches():
    follower = mirror(state=CMState.FOLLOWER)  # entries 1-4 of terms 1, 2, 3, 3; commit 2
    fresh = [LogEntry(3, "x"), LogEntry(3, "x")]
    assert follower_accepts(follower, ae(prev=4, prev_term=3, entries=[1, 1])) == (4, fresh, 2)  # appended
    matching = AppendEntriesArgs(3, 0, 2, 2, [LogEntry(3, "c2"), LogEntry(3, "c3")], 4)
    assert follower_accepts(follower, matching) == (4, [], 4)      # all held already: kept, and committed
    conflict = AppendEntriesArgs(4, 0, 2, 2, [LogEntry(4, "z")], 2)
    assert follower_accepts(mirror(state=CMState.FOLLOWER, term=4), conflict) == (2, [LogEntry(4, "z")], 2)
    assert follower_accepts(follower, ae(prev=4, prev_term=2, entries=[1])) is None  # rule 2 fails
    assert follower_accepts(follower, ae(term=4, entries=[1])) is None              # a newer term
    assert follower_accepts(mirror(), ae(entries=[1])) is None                       # not a follower
    assert follower_accepts(follower, ae())[1:] == ([], 2)                            # a heartbeat: nothing new


def test_a_lost_reply_or_an_old_terms_reply_changes_nothing():
    p = mirror()
    assert reply_changes(p, 1, "append_entries", ae(), None, lost=True) == {}
    assert reply_changes(p, 1, "request_vote", RequestVoteArgs(3, 0, 4, 3), None, lost=True) == {}
    assert reply_changes(p, 1, "append_entries", ae(term=2), AppendEntriesReply(2, False), lost=False) == {}
    assert reply_changes(p, 1, "append_entries", ae(), None, lost=True) == {}
    assert reply_changes(p, 1, "no_such_rpc", ae(), None, lost=True) is None
    assert reply_changes(p, 1, "request_vote", ae(), None, lost=True) is None  # the wrong arguments


def test_a_newer_term_a_counted_vote_or_a_backed_up_next_index_is_not_predicted():
    p = mirror()
    assert reply_changes(p, 1, "append_entries", ae(), AppendEntriesReply(4, False), lost=False) is None
    assert reply_changes(p, 1, "append_entries", ae(), AppendEntriesReply(3, False), lost=False) is None
    candidate = mirror(state=CMState.CANDIDATE)
    vote = RequestVoteArgs(3, 0, 4, 3)
    assert reply_changes(candidate, 1, "request_vote", vote, RequestVoteReply(3, True), lost=False) is None
    assert reply_changes(candidate, 1, "request_vote", vote, RequestVoteReply(3, False), lost=False) == {}
    assert reply_changes(p, 1, "request_vote", vote, RequestVoteReply(3, True), lost=False) == {}  # won already


def test_a_success_moves_match_and_next_index_on_and_the_commit_index_if_a_majority_has_an_entry_of_the_term():
    p = mirror(match={1: 2, 2: 4}, next_={1: 3, 2: 5}, commit=4)
    got = reply_changes(p, 1, "append_entries", ae(entries=[1, 1]), AppendEntriesReply(3, True), lost=False)
    assert got == {"match_index": {1: 4, 2: 4}, "next_index": {1: 5, 2: 5}}
    assert list(got["match_index"]) == [1, 2]  # the host's order
    assert reply_changes(p, 1, "append_entries", ae(prev=1, prev_term=1), AppendEntriesReply(3, True),
                         lost=False) == {}  # matchIndex never goes back
    q = mirror(commit=2)  # entry 3 of term 3 on a majority: the leader commits it
    assert reply_changes(q, 1, "append_entries", ae(entries=[1]), AppendEntriesReply(3, True), lost=False) == {
        "match_index": {1: 3, 2: 2}, "next_index": {1: 4, 2: 3}, "commit_index": 3}
    past = mirror(commit=2, log_terms=(1, 2), match={1: 2, 2: 3}, next_={1: 3, 2: 4})  # a majority past its log
    assert reply_changes(past, 1, "append_entries", ae(entries=[1]), AppendEntriesReply(3, True), lost=False) is None
    old = mirror(log_terms=(1, 2, 2, 3), commit=2)  # entry 3 of an older term: never committed by counting
    assert reply_changes(old, 1, "append_entries", ae(entries=[1]), AppendEntriesReply(3, True),
                         lost=False) == {"match_index": {1: 3, 2: 2}, "next_index": {1: 4, 2: 3}}


def test_an_install_snapshot_success_moves_match_and_next_index_to_the_snapshot():
    p = mirror()
    args = InstallSnapshotArgs(3, 0, 3, 3, b"state")
    assert reply_changes(p, 2, "install_snapshot", args, InstallSnapshotReply(3), lost=False) == {
        "match_index": {1: 2, 2: 3}, "next_index": {1: 3, 2: 4}}
    assert reply_changes(p, 2, "install_snapshot", args, InstallSnapshotReply(5), lost=False) is None


def test_a_leaders_round_sends_each_peer_the_entries_from_its_next_index_on():
    p = mirror(next_={1: 5, 2: 5})
    beat = AppendEntriesArgs(3, 0, 4, 3, [], 2)
    assert heartbeat_round(p, 3) == [(1, beat), (2, beat)]
    assert heartbeat_round(p, 2) is None                            # the loop of an older term ends
    assert heartbeat_round(mirror(state=CMState.FOLLOWER, next_={1: 5, 2: 5}), 3) is None  # no longer leader
    behind = heartbeat_round(mirror(next_={1: 5, 2: 3}), 3)      # peer 2 lacks entries 3 and 4
    assert behind[1] == (2, AppendEntriesArgs(3, 0, 2, 2, [LogEntry(3, "c2"), LogEntry(3, "c3")], 2))
    assert heartbeat_round(mirror(next_={1: 6, 2: 5}), 3) is None   # a nextIndex past its log
    assert heartbeat_round(mirror(next_={1: 5, 2: 5.0}), 3) is None  # not an int
    assert heartbeat_round(mirror(next_={1: 5}), 3) is None         # a peer it knows nothing of
    snapshotted = mirror(log_terms=(3,), next_={1: 5, 2: 5})
    snapshotted.last_included_index, snapshotted.last_included_term = 3, 2
    assert heartbeat_round(snapshotted, 3)[0] == (1, AppendEntriesArgs(3, 0, 4, 3, [], 2))
    snapshotted.log, snapshotted.next_index = [], {1: 4, 2: 4}
    assert heartbeat_round(snapshotted, 3)[0] == (1, AppendEntriesArgs(3, 0, 3, 2, [], 2))  # the snapshot's last
    snapshotted.next_index = {1: 4, 2: 3}
    assert heartbeat_round(snapshotted, 3) is None                  # peer 2 needs the snapshot


def test_a_packet_is_read_once_and_what_a_node_sends_cannot_break_that():
    """Predictions read a request again when its reply comes: the message
    of a packet is kept, as decoding is a function of its bytes alone."""
    from raftkit.isolation import process
    from raftkit.messages import decode, encode
    args = ae(entries=[1])
    packet = encode(args)
    first = process._decoded(packet)
    assert first == args
    assert process._decoded((bytes(bytearray(packet[0])), packet[1])) is first  # equal bytes: read once
    assert process._decoded((b"\x80\x05garbage", True)) is None
    assert process._decoded(["not", "a", "packet"]) is None  # read (and refused), not kept
    big = encode(AppendEntriesArgs(3, 0, 2, 2, [LogEntry(3, "x" * 10_000)], 2))
    assert process._decoded(big) == decode(*big) and big not in process._DECODED  # large ones are not kept


def test_a_heartbeat_and_a_success_reply_made_once_are_those_made_each_time():
    """A steady cluster sends the same heartbeats and replies again: the
    trusted side makes their packets and summaries once (a function of
    their numbers), exactly as encoding them each time would."""
    from raftkit.isolation.process import _accepted, _sent
    from raftkit.messages import encode, summarize
    for beat in (ae(), ae(entries=[1, 2]), ae(prev=0, prev_term=0, commit=0, term=7)):
        assert _sent(beat) == (encode(beat), summarize(beat))
        assert _sent(beat) == _sent(AppendEntriesArgs(*(getattr(beat, f) for f in (
            "term", "leader_id", "prev_log_index", "prev_log_term", "entries", "leader_commit"))))
    reply, packet, summary = _accepted(5)
    assert reply == AppendEntriesReply(5, True) and (packet, summary) == (encode(reply), summarize(reply))
