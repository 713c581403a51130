"""The Raft consensus module: Figure 2 of the paper, in the Go skeleton's shape.

One ``threading.Lock`` (``self.mu``) guards all state. Threads: an election
timer (a 10 ms ticker) while follower or candidate, a heartbeat loop while
leader, one thread per outgoing RPC, and one applier that delivers committed
entries to the service. The lock is never held across a blocking call.
Methods whose docstring says "mu held" expect the caller to hold ``self.mu``.

Log indexes are 1-based. ``self.log[k]`` is the entry at index
``last_included_index + 1 + k``: entries up to ``last_included_index`` live in
the snapshot.

Read beside the Go skeleton (eliben/raft's ``raft.go``), names map as follows:

==========================  ==========================================
Go                          Python
==========================  ==========================================
``ConsensusModule``         ``ConsensusModule``
``NewConsensusModule``      ``ConsensusModule(...)`` + ``start()``
``cm.mu`` (sync.Mutex)      ``self.mu`` (threading.Lock)
``Report``                  ``get_state``
``Stop``                    ``stop``
``dlog``                    ``emit`` (an event in the trace; never a print)
``go f(x)``                 ``self.go(f, x)``
``electionTimeout``         ``election_timeout``
``runElectionTimer``        ``run_election_timer``
``startElection``           ``start_election``
``RequestVote``             ``request_vote``
``becomeFollower``          ``become_follower``
``startLeader``             ``start_leader``
``leaderSendAEs``           ``send_heartbeats`` (one round to every peer)
``AppendEntries``           ``append_entries``
``lastLogIndexAndTerm``     ``last_log_index``, ``last_log_term``
``commitChanSender``        ``run_applier``
``Submit``                  ``submit``
``persistToStorage``        ``persist``
``restoreFromStorage``      ``restore``
==========================  ==========================================
"""

from __future__ import annotations

import array
import io
import pickle
import random
import threading
from collections.abc import Callable
from typing import Any

from .bus import Bus
from .clock import Clock
from .config import Config
from .messages import (
    AppendEntriesArgs,
    AppendEntriesReply,
    ApplyMsg,
    CMState,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    LogEntry,
    RequestVoteArgs,
    RequestVoteReply,
)
from .storage import Storage

__all__ = ["ConsensusModule"]

_PICKLE = pickle.HIGHEST_PROTOCOL
FOLLOWER, CANDIDATE, LEADER, DEAD = CMState.FOLLOWER, CMState.CANDIDATE, CMState.LEADER, CMState.DEAD


def extend_if_appended(copy: list, log: list) -> bool:
    """If ``log`` is ``copy`` with entries added at the end, add them to
    ``copy`` and return True; else leave ``copy`` as it was and return False.
    Every entry is compared (at C speed, without copying the log), so an
    entry changed in the middle is noticed."""
    k = len(copy)
    if len(log) < k:
        return False
    copy.extend(log[k:])
    if copy == log:
        return True
    del copy[k:]
    return False


class ConsensusModule:
    """One Raft server. Subclass it and override methods to replace pieces.

    >>> import raftkit
    >>> with raftkit.Cluster(3, seed=1) as c:
    ...     leader = c.check_one_leader()
    ...     c.nodes[leader].get_state()[1]
    True
    """

    max_entries = 4096  # at most this many entries in one AppendEntries (a far-behind follower gets several)

    def __init__(self, id: int, peer_ids: list[int], *, clock: Clock, bus: Bus,
                 storage: Storage, apply: Callable[[ApplyMsg], None],
                 config: Config | None = None, rng: random.Random | None = None,
                 emit: Callable[..., Any] | None = None):
        self.mu = threading.Lock()
        self.id = id
        self.peer_ids = list(peer_ids)
        self.clock, self.bus, self.storage, self.apply = clock, bus, storage, apply
        self.config = config or Config()
        self.rng = rng or random.Random(id)
        self._emit = emit

        # Persistent state on all servers (Figure 2)
        self.current_term = 0
        self.voted_for: int | None = None
        self.log: list[LogEntry] = []
        self.last_included_index = 0
        self.last_included_term = 0
        # Volatile state on all servers
        self.commit_index = 0
        self.last_applied = 0
        self.state = FOLLOWER
        self.election_reset_event = 0.0
        self.timeout = 0.0
        # Volatile state on leaders
        self.next_index: dict[int, int] = {}
        self.match_index: dict[int, int] = {}

        self._encoded_entries: list[LogEntry] = []  # persist() cache, see _encoded_log
        self._encoded_ends = array.array("q")  # 8 bytes per entry (a list of ints: about 36)
        self._encoded = bytearray()
        self._saved = 0  # bytes of _encoded that the storage holds already (see _save)
        self.snapshot_data = b""
        self.pending_snapshot: ApplyMsg | None = None
        self.trigger_ae = clock.channel(1)    # "send AppendEntries now", coalesced
        self.commit_ready = clock.channel(1)  # "something new to apply", coalesced
        # Group commit, real clock only: ``submit`` leaves the persist to the
        # next round (which persists before it sends anything), and a round
        # skips a peer whose last AppendEntries is still in flight, for up to a
        # heartbeat interval; the reply starts the next round. A burst of
        # submits then costs one persist and one AppendEntries per peer, not
        # one each. The virtual clock keeps one persist and one round per
        # submit, so recorded runs replay as they were; so does a subclass
        # that replaces the methods this relies on.
        self.group_commit = not clock.virtual and all(
            getattr(type(self), name) is getattr(ConsensusModule, name)
            for name in ("submit", "send_heartbeats", "send_append_entries", "persist"))
        self.unpersisted = False                # entries appended since the last persist
        self.in_flight: dict[int, float] = {}   # peer -> when its AppendEntries in flight was sent
        self.restore()

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        """Start the threads. Called once every peer is wired to the bus."""
        with self.mu:
            self.election_reset_event = self.clock.now()
        self.go(self.run_election_timer)
        self.go(self.run_applier)
        if self.pending_snapshot is not None:
            self.commit_ready.try_send(True)  # the restored snapshot goes to the service first

    def stop(self) -> None:
        """Kill: the node stops taking part (its threads are ended by the clock)."""
        with self.mu:
            self.state = DEAD
            self.emit("state", detail="dead")

    def go(self, fn, *args) -> None:
        """Start ``fn(*args)`` on a new thread of this node (Go's ``go``)."""
        self.clock.go(fn, *args, owner=self, name=f"node {self.id}: {fn.__name__}")

    def emit(self, kind: str, peer: int | None = None, detail: str = "") -> None:
        """Record an event in the cluster trace. Raft threads never print."""
        if self._emit is not None:
            self._emit(kind, self.id, peer, detail)

    def get_state(self) -> tuple[int, bool]:
        with self.mu:
            return self.current_term, self.state == LEADER

    # ---------------------------------------------------------- log helpers
    def last_log_index(self) -> int:
        """mu held."""
        return self.last_included_index + len(self.log)

    def last_log_term(self) -> int:
        """mu held."""
        return self.log[-1].term if self.log else self.last_included_term

    def term_at(self, index: int) -> int:
        """mu held. Term of the entry at ``index`` (0 before the first)."""
        if index == self.last_included_index:
            return self.last_included_term
        if index < self.last_included_index:
            raise IndexError(f"entry {index} is compacted into the snapshot (up to {self.last_included_index})")
        return self.log[index - self.last_included_index - 1].term

    def entry(self, index: int) -> LogEntry:
        """mu held."""
        return self.log[index - self.last_included_index - 1]

    # --------------------------------------------------------- persistence
    def persist(self, snapshot: bytes | None = None) -> None:
        """mu held. Save currentTerm, votedFor and the log (Figure 2: "updated
        on stable storage before responding to RPCs"), with the snapshot if
        given (None keeps the saved one)."""
        header = pickle.dumps((self.current_term, self.voted_for, self.last_included_index,
                               self.last_included_term, len(self.log)), protocol=_PICKLE)
        self._save(header, snapshot)
        self.unpersisted = False

    def _save(self, header: bytes, snapshot: bytes | None) -> None:
        """mu held. ``storage.save(header + encoded log, snapshot)``, passing
        only the log bytes that changed since the last save to a storage
        that can take them (``Storage.save_log``)."""
        log = self._encoded_log()
        save_log = getattr(self.storage, "save_log", None)
        if save_log is None:
            self.storage.save(header + log, snapshot)
        else:
            save_log(header, log, min(self._saved, len(log)), snapshot)
        self._saved = len(log)

    def _encoded_log(self) -> bytearray:
        """The log as one pickle per entry. Only entries appended since the
        last call are encoded (whole-log pickling made every persist O(log)):
        ``_encoded_ends[i]`` is where entry i's pickle ends in the buffer."""
        log, done, ends, buf = self.log, self._encoded_entries, self._encoded_ends, self._encoded
        k = len(done)
        if not extend_if_appended(done, log):  # entries were removed or replaced: keep the common prefix
            k = next((i for i, (a, b) in enumerate(zip(log, done)) if a is not b), min(k, len(log)))
            del done[k:]
            del ends[k:]
            del buf[ends[-1] if ends else 0:]
            self._saved = min(self._saved, len(buf))
            done.extend(log[k:])
        for e in done[k:]:
            buf += pickle.dumps((e.term, e.command), protocol=_PICKLE)
            ends.append(len(buf))
        return buf

    def restore(self) -> None:
        """Load persisted state (and snapshot) after a restart."""
        data = self.storage.read_state()
        if not data:
            return
        stream = io.BytesIO(data)
        try:
            term, voted_for, lii, lit, n = pickle.load(stream)
            log = [LogEntry(*pickle.load(stream)) for _ in range(n)]
        except Exception as e:
            raise ValueError(f"node {self.id}: the persisted Raft state in {self.storage!r} "
                             f"cannot be read ({type(e).__name__}: {e})") from None
        self.current_term, self.voted_for, self.log = term, voted_for, log
        self.last_included_index, self.last_included_term = lii, lit
        self.snapshot_data = self.storage.read_snapshot()
        if lii > 0:
            self.commit_index = self.last_applied = lii
            self.pending_snapshot = ApplyMsg(False, None, 0, True, self.snapshot_data, lit, lii)

    # ------------------------------------------------------------ elections
    def election_timeout(self) -> float:
        """A fresh random election timeout, in seconds."""
        return self.rng.uniform(*self.config.election_timeout)

    def run_election_timer(self) -> None:
        """Start an election if no leader is heard from for a timeout.
        Returns when the term changes or the node becomes leader."""
        timeout = self.election_timeout()
        with self.mu:
            term_started = self.current_term
            self.timeout = timeout  # for drawing the timer
        ticker = self.clock.ticker(self.config.ticker_interval)
        while True:
            ticker.tick()
            with self.mu:  # `with` releases the lock on every path (the Go skeleton's bug)
                if self.state not in (FOLLOWER, CANDIDATE) or self.current_term != term_started:
                    return
                if self.clock.now() - self.election_reset_event >= timeout:
                    self.emit("timeout", detail=f"no leader for {timeout * 1000:.0f} ms")
                    self.start_election()
                    return

    def start_election(self) -> None:
        """mu held. Become candidate: new term, vote for self, ask everyone."""
        self.state = CANDIDATE
        self.current_term += 1
        saved_term = self.current_term
        self.election_reset_event = self.clock.now()
        self.voted_for = self.id
        self.persist()
        self.emit("state", detail=f"candidate term={saved_term}")
        args = RequestVoteArgs(saved_term, self.id, self.last_log_index(), self.last_log_term())
        votes = [1]  # shared by this election's reply threads, under mu
        if self._is_majority(1):  # a cluster of one
            self.start_leader()
            return
        for peer in self.peer_ids:
            self.go(self.send_request_vote, peer, args, votes)
        self.go(self.run_election_timer)  # retry if this election fails (split vote)

    def send_request_vote(self, peer: int, args: RequestVoteArgs, votes: list) -> None:
        reply = self.bus.call(self.id, peer, "request_vote", args)
        if reply is None:
            return
        with self.mu:
            # Compare against the live term: a vote for an old election counts for nothing.
            if (self.step_down_if_newer(reply.term) or self.state != CANDIDATE
                    or self.current_term != args.term or not reply.vote_granted):
                return
            votes[0] += 1
            if self._is_majority(votes[0]):
                self.start_leader()

    def request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:
        """RequestVote RPC handler (receiver implementation, Figure 2)."""
        with self.mu:
            if self.state == DEAD:
                return RequestVoteReply(self.current_term, False)
            changed = False
            if args.term > self.current_term:  # all servers: adopt a newer term
                self.become_follower(args.term)
                changed = True
            # Election restriction (§5.4.1): candidate's log at least as up-to-date as ours.
            my_last_term, my_last_index = self.last_log_term(), self.last_log_index()
            up_to_date = (args.last_log_term > my_last_term or
                          (args.last_log_term == my_last_term and args.last_log_index >= my_last_index))
            granted = (args.term == self.current_term and up_to_date
                       and self.voted_for in (None, args.candidate_id))
            if granted:
                changed = changed or self.voted_for != args.candidate_id
                self.voted_for = args.candidate_id
                self.election_reset_event = self.clock.now()
                self.emit("vote", args.candidate_id, f"term={args.term}")
            if changed:
                self.persist()  # before answering
            return RequestVoteReply(self.current_term, granted)

    def become_follower(self, term: int) -> None:
        """mu held. Step down to follower in ``term`` (>= current term)."""
        old = self.state
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None  # only a new term frees the vote
        self.state = FOLLOWER
        self.election_reset_event = self.clock.now()
        self.emit("state", detail=f"follower term={term}" + (f" (was {old})" if old != FOLLOWER else ""))
        self.go(self.run_election_timer)

    def step_down_if_newer(self, term: int) -> bool:
        """mu held. "If RPC request or response contains term T > currentTerm:
        set currentTerm = T, convert to follower" (Figure 2). True if it did."""
        if term <= self.current_term:
            return False
        self.become_follower(term)
        self.persist()
        return True

    def _is_majority(self, count: int) -> bool:
        return 2 * count > len(self.peer_ids) + 1

    # ------------------------------------------------------------- leading
    def start_leader(self) -> None:
        """mu held. Won the election: initialise leader state, start heartbeats."""
        self.state = LEADER
        for peer in self.peer_ids:
            self.next_index[peer] = self.last_log_index() + 1
            self.match_index[peer] = 0
        self.emit("state", detail=f"leader term={self.current_term}")
        self.go(self.run_heartbeats, self.current_term)

    def run_heartbeats(self, term: int) -> None:
        """While leader of ``term``: send AppendEntries every heartbeat
        interval, or at once when ``submit`` or a new commit asks for it."""
        while True:
            with self.mu:
                if self.state != LEADER or self.current_term != term:
                    return
            self.send_heartbeats()
            self.trigger_ae.recv(timeout=self.config.heartbeat_interval)
            self.trigger_ae.try_recv()  # a trigger that queued meanwhile rides this same round

    def send_heartbeats(self) -> None:
        """One round of AppendEntries (or InstallSnapshot) to every peer. The
        RPC threads start once the lock is released: starting a thread waits
        until it runs, and nobody should wait for that behind the lock."""
        sends = []
        with self.mu:
            if self.state != LEADER:
                return
            term = self.current_term
            if self.unpersisted:
                self.persist()  # group commit: the burst's entries, before any of them is sent
            now = self.clock.now()
            for peer in self.peer_ids:
                if self.group_commit and now - self.in_flight.get(peer, -1e9) < self.config.heartbeat_interval:
                    continue  # its reply starts the next round
                ni = self.next_index[peer]
                if ni <= self.last_included_index:  # the entries it needs are compacted
                    args = InstallSnapshotArgs(term, self.id, self.last_included_index,
                                               self.last_included_term, self.snapshot_data)
                    sends.append((self.send_install_snapshot, peer, args))
                else:
                    prev = ni - 1
                    first = prev - self.last_included_index  # where entry ni sits in self.log
                    args = AppendEntriesArgs(term, self.id, prev, self.term_at(prev),
                                             self.log[first:first + self.max_entries], self.commit_index)
                    if self.group_commit:
                        self.in_flight[peer] = now
                    sends.append((self.send_append_entries, peer, args))
        for send, peer, args in sends:
            self.go(send, peer, args)

    def send_append_entries(self, peer: int, args: AppendEntriesArgs) -> None:
        reply = self.bus.call(self.id, peer, "append_entries", args)
        if reply is None:
            if self.group_commit:
                with self.mu:
                    self.in_flight.pop(peer, None)
            return
        with self.mu:
            self.in_flight.pop(peer, None)
            if self.step_down_if_newer(reply.term) or self.state != LEADER or self.current_term != args.term:
                return  # we stepped down, or it answers an old term's request
            if reply.success:
                # Use the request's own numbers: matchIndex never goes backwards.
                match = args.prev_log_index + len(args.entries)
                if match > self.match_index[peer]:
                    self.match_index[peer] = match
                self.next_index[peer] = max(self.next_index[peer], self.match_index[peer] + 1)
                self.advance_commit_index()
                if self.group_commit and self.next_index[peer] <= self.last_log_index():
                    self.trigger_ae.try_send(True)  # entries came while this one was in flight
            else:
                self.next_index[peer] = max(self.match_index[peer] + 1, self.backup_index(reply))
                self.trigger_ae.try_send(True)  # retry now, not at the next heartbeat

    def backup_index(self, reply: AppendEntriesReply) -> int:
        """mu held. Fast nextIndex backup from the follower's conflict hint:
        skip the whole conflicting term at once."""
        if reply.conflict_term > 0:
            for index in range(self.last_log_index(), self.last_included_index, -1):
                if self.term_at(index) == reply.conflict_term:
                    return index + 1
        return max(1, reply.conflict_index)

    def advance_commit_index(self) -> None:
        """mu held. Commit the highest index stored on a majority, but only
        if it is from the current term (§5.4.2, Figure 8): older entries are
        committed indirectly, never by counting replicas."""
        matches = sorted([self.last_log_index()] + [self.match_index[p] for p in self.peer_ids], reverse=True)
        n = matches[(len(matches)) // 2]  # stored on a majority
        if n > self.commit_index and self.term_at(n) == self.current_term:
            self.commit_index = n
            self.emit("commit", detail=f"commit_index={n}")
            self.commit_ready.try_send(True)  # followers learn it with the next round

    def send_install_snapshot(self, peer: int, args: InstallSnapshotArgs) -> None:
        reply = self.bus.call(self.id, peer, "install_snapshot", args)
        if reply is None:
            return
        with self.mu:
            if self.step_down_if_newer(reply.term) or self.state != LEADER or self.current_term != args.term:
                return
            self.match_index[peer] = max(self.match_index[peer], args.last_included_index)
            self.next_index[peer] = max(self.next_index[peer], args.last_included_index + 1)

    # ------------------------------------------------------------ following
    def append_entries(self, args: AppendEntriesArgs) -> AppendEntriesReply:
        """AppendEntries RPC handler (receiver implementation, Figure 2)."""
        with self.mu:
            if self.state == DEAD:
                return AppendEntriesReply(self.current_term, False)
            changed = False
            if args.term > self.current_term:
                self.become_follower(args.term)
                changed = True
            if args.term < self.current_term:  # 1. reply false if term < currentTerm
                if changed:
                    self.persist()
                return AppendEntriesReply(self.current_term, False)
            if self.state != FOLLOWER:  # a candidate hears the new leader of its term
                self.become_follower(args.term)
            self.election_reset_event = self.clock.now()

            prev, prev_term, entries = args.prev_log_index, args.prev_log_term, args.entries
            if prev < self.last_included_index:  # the start is in our snapshot: skip it
                skip = self.last_included_index - prev
                entries = entries[skip:]
                prev, prev_term = self.last_included_index, self.last_included_term
            # 2. reply false if log doesn't contain an entry at prevLogIndex matching prevLogTerm
            if prev > self.last_log_index() or self.term_at(prev) != prev_term:
                conflict_index, conflict_term = self.conflict_hint(prev)
                if changed:
                    self.persist()
                return AppendEntriesReply(self.current_term, False, conflict_index, conflict_term)
            # 3./4. delete a conflicting entry and all that follow; append new ones.
            # Entries that already match stay: a stale request must not truncate the log.
            index, k = prev + 1, 0
            while k < len(entries) and index <= self.last_log_index() and self.term_at(index) == entries[k].term:
                index, k = index + 1, k + 1
            if k < len(entries):
                del self.log[index - self.last_included_index - 1:]
                self.log.extend(entries[k:])
                changed = True
            # 5. commitIndex = min(leaderCommit, index of last new entry)
            last_new = prev + len(entries)
            if args.leader_commit > self.commit_index and last_new > self.commit_index:
                self.commit_index = min(args.leader_commit, last_new)
                self.emit("commit", detail=f"commit_index={self.commit_index}")
                self.commit_ready.try_send(True)
            if changed:
                self.persist()
            return AppendEntriesReply(self.current_term, True)

    def conflict_hint(self, prev: int) -> tuple[int, int]:
        """mu held. (conflict_index, conflict_term) for a failed consistency
        check: our log length if it is too short, else the first index of the
        term that conflicts at ``prev``."""
        if prev > self.last_log_index():
            return self.last_log_index() + 1, 0
        term = self.term_at(prev)
        index = prev
        while index - 1 > self.last_included_index and self.term_at(index - 1) == term:
            index -= 1
        return index, term

    def install_snapshot(self, args: InstallSnapshotArgs) -> InstallSnapshotReply:
        """InstallSnapshot RPC handler (Figure 13), whole snapshot in one RPC."""
        with self.mu:
            if self.state == DEAD:
                return InstallSnapshotReply(self.current_term)
            if args.term > self.current_term:
                self.become_follower(args.term)
                self.persist()
            if args.term < self.current_term:
                return InstallSnapshotReply(self.current_term)
            if self.state != FOLLOWER:
                self.become_follower(args.term)
            self.election_reset_event = self.clock.now()
            if args.last_included_index <= self.commit_index:
                return InstallSnapshotReply(self.current_term)  # stale: never move backwards
            lii = args.last_included_index
            if lii <= self.last_log_index() and self.term_at(lii) == args.last_included_term:
                self.log = self.log[lii - self.last_included_index:]  # keep the suffix that follows
            else:
                self.log = []
            self.last_included_index, self.last_included_term = lii, args.last_included_term
            self.snapshot_data = args.data
            self.commit_index = self.last_applied = lii
            self.pending_snapshot = ApplyMsg(False, None, 0, True, args.data, args.last_included_term, lii)
            self.persist(args.data)
            self.emit("install", args.leader_id, f"snapshot up to {lii}")
            self.commit_ready.try_send(True)
            return InstallSnapshotReply(self.current_term)

    # -------------------------------------------------------------- clients
    def submit(self, command: Any) -> tuple[int, int, bool]:
        """Start agreement on ``command``: ``(index, term, is_leader)`` at once."""
        with self.mu:
            if self.state != LEADER:
                return -1, self.current_term, False
            self.log.append(LogEntry(self.current_term, command))
            if self.group_commit and self.peer_ids:
                self.unpersisted = True  # the next round persists it, before sending it
            else:
                self.persist()
            index = self.last_log_index()
            self.emit("append", detail=f"index={index} term={self.current_term} command={repr(command)[:40]}")
            if not self.peer_ids:
                self.advance_commit_index()
            term = self.current_term
        self.trigger_ae.try_send(True)  # a fresh round soon; many submits share it
        return index, term, True

    def snapshot(self, index: int, data: bytes) -> None:
        """The service has applied everything up to ``index`` and captured it
        in ``data``: drop the log up to there."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"snapshot data must be bytes, got {type(data).__name__}")
        with self.mu:
            if index <= self.last_included_index:
                return  # already compacted
            if index > self.last_applied:
                raise ValueError(f"cannot snapshot at {index}: only {self.last_applied} entries are applied")
            term = self.term_at(index)
            self.log = self.log[index - self.last_included_index:]
            self.last_included_index, self.last_included_term = index, term
            self.snapshot_data = bytes(data)
            self.persist(self.snapshot_data)
            self.emit("snapshot", detail=f"up to {index}")

    # -------------------------------------------------------------- applier
    def run_applier(self) -> None:
        """The single applier: delivers the snapshot and committed entries
        to the service in index order, outside the lock."""
        while True:
            self.commit_ready.recv()
            with self.mu:
                snapshot, self.pending_snapshot = self.pending_snapshot, None
                first, last = self.last_applied + 1, self.commit_index
                entries = self.log[first - self.last_included_index - 1:last - self.last_included_index]
                self.last_applied = max(self.last_applied, last)
            if snapshot is not None:
                self.apply(snapshot)
            for index, entry in enumerate(entries, first):
                self.apply(ApplyMsg(True, entry.command, index))

    def __repr__(self):
        return (f"<{type(self).__name__} {self.id} {self.state} term={self.current_term} "
                f"log={self.last_log_index()} commit={self.commit_index}>")
