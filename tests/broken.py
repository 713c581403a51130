"""Deliberately broken nodes and services, one classic bug each, shared by the tests."""

from raftkit import AppendEntriesReply, CMState, ConsensusModule, LogEntry, RequestVoteReply
from raftkit.kv import KVReply, KVService


class DoubleVoter(ConsensusModule):
    """Bug: grants every vote of the current term, even after voting for someone else."""

    def request_vote(self, args):
        with self.mu:
            if args.term > self.current_term:
                self.become_follower(args.term)
            granted = args.term == self.current_term
            if granted:
                self.voted_for = args.candidate_id
                self.election_reset_event = self.clock.now()
            self.persist()
            return RequestVoteReply(self.current_term, granted)


class CountingCommitter(ConsensusModule):
    """Bug: commits any entry stored on a majority, whatever its term (Figure 8)."""

    def advance_commit_index(self):
        matches = sorted([self.last_log_index()] + list(self.match_index.values()), reverse=True)
        n = matches[len(matches) // 2]
        if n > self.commit_index:
            self.commit_index = n
            self.commit_ready.try_send(True)


class Truncator(ConsensusModule):
    """Bug: on success, replaces everything after prev_log_index by the
    request's entries, so a stale request deletes entries that matched."""

    def append_entries(self, args):
        with self.mu:
            if args.term > self.current_term:
                self.become_follower(args.term)
            if args.term < self.current_term:
                return AppendEntriesReply(self.current_term, False)
            if self.state != CMState.FOLLOWER:
                self.become_follower(args.term)
            self.election_reset_event = self.clock.now()
            prev = args.prev_log_index
            if prev > self.last_log_index() or self.term_at(prev) != args.prev_log_term:
                return AppendEntriesReply(self.current_term, False, *self.conflict_hint(prev))
            self.log = self.log[:prev] + list(args.entries)   # the bug: truncates matching entries
            if args.leader_commit > self.commit_index:
                self.commit_index = min(args.leader_commit, prev + len(args.entries))
                self.commit_ready.try_send(True)
            self.persist()
            return AppendEntriesReply(self.current_term, True)


class Overwriter(ConsensusModule):
    """Bug: a leader replaces its last entry instead of appending."""

    def submit(self, command):
        with self.mu:
            if self.state == CMState.LEADER and self.log:
                self.log = self.log[:-1] + [LogEntry(self.current_term, command)]
                return self.last_log_index(), self.current_term, True
        return super().submit(command)


class NoDedupKV(KVService):
    """Bug: applies every operation it sees, retries included."""

    def execute(self, index, command):
        self.store.last.clear()
        super().execute(index, command)


class LocalReadKV(KVService):
    """Bug: a leader answers Get from its own state, without the log."""

    def kv_request(self, args):
        if args.kind == "get" and self.node.get_state()[1]:
            return KVReply("OK", self.store.data.get(args.key, ""))
        return super().kv_request(args)
