"""Node classes for tests/test_isolation.py: they must live in a module, so
that a node process can import them. Some are hostile on purpose."""

from __future__ import annotations

import os
import pickle
import signal
import struct

from raftkit.messages import CMState
from raftkit.raft import ConsensusModule

FOLLOWER, CANDIDATE = CMState.FOLLOWER, CMState.CANDIDATE  # the names a notebook's cells have

INCARNATIONS: list = []  # a module-level "memory" a restarted node must not see


class Remembers(ConsensusModule):
    """Counts its incarnations in a module variable, and says so in the trace."""

    def start(self):
        INCARNATIONS.append(self.id)
        self.emit("note", detail=f"incarnations seen: {len(INCARNATIONS)}")
        super().start()


def _frame(obj) -> bytes:
    data = pickle.dumps(obj)
    return struct.pack(">I", len(data)) + data


def _socket_fds():
    return [int(fd) for fd in os.listdir("/proc/self/fd") if os.path.islink(f"/proc/self/fd/{fd}")
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")]


class ExitsOnVote(ConsensusModule):
    """Its process exits (code 0) when asked for a vote."""

    def request_vote(self, args):
        os._exit(0)


class KilledOnVote(ConsensusModule):
    def request_vote(self, args):
        os.kill(os.getpid(), signal.SIGKILL)


class LoopsOnVote(ConsensusModule):
    def request_vote(self, args):
        while True:
            pass


class ForgesCode(ConsensusModule):
    """Writes a pickle that would run a shell command where it is unpickled."""

    MARK = "/tmp/raftkit-isolation-forged"

    def request_vote(self, args):
        class Boom:
            def __reduce__(self):
                return (os.system, (f"touch {ForgesCode.MARK}",))
        for fd in _socket_fds():
            os.write(fd, _frame(("end", 1, Boom(), None, None)))
        return super().request_vote(args)


class HugeFrame(ConsensusModule):
    """Announces a frame of 4 GB on its pipe."""

    def request_vote(self, args):
        for fd in _socket_fds():
            os.write(fd, struct.pack(">I", 0xFFFFFFF0))
        return super().request_vote(args)


class Garbage(ConsensusModule):
    def request_vote(self, args):
        for fd in _socket_fds():
            os.write(fd, b"\x00\x00\x00\x05hello")
        return super().request_vote(args)


class LiesAboutState(ConsensusModule):
    """Its state is not a CMState."""

    def start(self):
        self.state = "Emperor"
        super().start()


class ThreadBomb(ConsensusModule):
    def request_vote(self, args):
        while True:
            self.go(self.get_state)


class EmitsForever(ConsensusModule):
    """Writes trace events in a loop and never blocks: as stuck as a bare loop."""

    def request_vote(self, args):
        while True:
            self.emit("spam", self.id)


class TermBecomesTrue(ConsensusModule):
    """Sets its term to True (== 1 in Python) once it has term 1: the mirror
    must see the bool, not take it for the unchanged 1."""

    def request_vote(self, args):
        reply = super().request_vote(args)
        if self.current_term == 1:
            self.current_term = True
        return reply


class _ForgesReport(ConsensusModule):
    """Sends ``REPORT`` as its state report once asked for a vote (the host's
    own code, replaced from node code)."""

    REPORT = None

    def request_vote(self, args):
        from raftkit.isolation.host import Host
        Host.report = lambda host: type(self).REPORT
        return super().request_vote(args)


class LogLengthLies(_ForgesReport):
    """Says nothing changed but a log length it does not have."""

    REPORT = 10 ** 9


class ReportIsTrue(_ForgesReport):
    """Sends True where an unchanged report is the log's length (an int)."""

    REPORT = True


# --------------------------------------------------------------------------
# Exercise 7: clerks that try to make up a history
# --------------------------------------------------------------------------

from raftkit.kv import OK, Clerk, ClerkTimeout, KVArgs, KVStore  # noqa: E402
from raftkit.messages import RequestVoteArgs  # noqa: E402

LOCAL: dict = {}


class ForgingClerk(Clerk):
    """Answers from a dict of its own, never asking a server."""

    def request(self, kind, key, value):
        if kind == "put":
            LOCAL[key] = value
            return None
        if kind == "append":
            LOCAL[key] = LOCAL.get(key, "") + value
        return LOCAL.get(key, "")


class AnswersWithAnotherKey(Clerk):
    """Asks a server about another key, and returns that answer."""

    def request(self, kind, key, value):
        while True:
            self.seq += 1
            reply = self.cluster.bus.call(self.endpoint, self.leader, "kv_request",
                                          KVArgs(self.client_id, self.seq, "get", key + "-other", None))
            if reply is not None and reply.err == OK:
                return reply.value
            self.leader = (self.leader + 1) % self.cluster.n
            self.cluster.clock.sleep(0.05)


class CallsRaft(Clerk):
    """Sends a Raft RPC to a server, as if it were a node."""

    def request(self, kind, key, value):
        self.cluster.bus.call(self.endpoint, 0, "request_vote", RequestVoteArgs(99, 1, 0, 0))
        return None


class GivesUpAtOnce(Clerk):
    """Every operation 'timed out': all of them maybe applied, any history linearizable."""

    def request(self, kind, key, value):
        raise ClerkTimeout("no")


class ExitsOnRequest(Clerk):
    def request(self, kind, key, value):
        os._exit(3)


class AnswersWithoutRaft(KVStore):
    """Its server answers every request from its own store at once, never
    putting it in the log: one server's answers alone look linearizable."""

    def __init__(self):
        super().__init__()
        from raftkit.kv import KVReply, KVService

        def kv_request(service, op):
            return KVReply(OK, service.store.apply(op))
        KVService.kv_request = kv_request  # in this server's process


class LoopsOnApply(KVStore):
    def apply(self, op):
        while True:
            pass


def _my_host():
    import gc

    from raftkit.isolation.host import Host
    return next(o for o in gc.get_objects() if isinstance(o, Host))


class SavesState(Clerk):
    """Reaches its host and posts a storage save, as a node would."""

    def request(self, kind, key, value):
        _my_host().post("save", b"forged", None)
        return None


class AppliesEntries(Clerk):
    """Reaches its host and reports an applied command, as a node would."""

    def request(self, kind, key, value):
        _my_host().request("apply", (True, "forged", 1, False, None, 0, 0), block=True)
        return None


class PostsApplied(Clerk):
    """Reaches its host and posts an applied command, the way a node's
    process hands applies on without waiting."""

    def request(self, kind, key, value):
        _my_host().post("apply", (True, "forged", 1, False, None, 0, 0))
        return None


class NotesItsTicks(ConsensusModule):
    """Its election timer notes every 7th tick in the trace: a tick that
    does more than tick again, where the grader predicts an idle one (its
    body is also a notebook's, in tests/test_grading.py)."""

    def run_election_timer(self):
        timeout = self.election_timeout()
        with self.mu:
            term_started = self.current_term
            self.timeout = timeout
        ticker = self.clock.ticker(self.config.ticker_interval)
        ticks = 0
        while True:
            ticker.tick()
            ticks += 1
            with self.mu:
                if self.state != CANDIDATE and self.state != FOLLOWER:
                    return
                if term_started != self.current_term:
                    return
                if ticks % 7 == 0:
                    self.emit("note", detail=f"tick {ticks}")
                if self.clock.now() - self.election_reset_event >= timeout:
                    self.start_election()
                    return


class _ActsOnATick(NotesItsTicks):
    """Node 1's election timer does ``act()`` in its 7th tick, which the
    grader predicts idle, where NotesItsTicks would note it; the other
    nodes' timers are the reference's."""

    def emit(self, kind, *args, **kwargs):
        if kind != "note":
            return super().emit(kind, *args, **kwargs)
        if self.id == 1:
            self.act()


class LoopsOnATick(_ActsOnATick):
    def act(self):
        while True:
            pass


class ExitsOnATick(_ActsOnATick):
    def act(self):
        os._exit(3)


class KeepsItsTimeout(ConsensusModule):
    """The reference election timer, but its timeout stays a local
    variable (``self.timeout`` is never set): as most students write it."""

    def run_election_timer(self):
        timeout = self.election_timeout()
        with self.mu:
            term_started = self.current_term
        ticker = self.clock.ticker(self.config.ticker_interval)
        while True:
            ticker.tick()
            with self.mu:
                if self.state != CANDIDATE and self.state != FOLLOWER:
                    return
                if term_started != self.current_term:
                    return
                if self.clock.now() - self.election_reset_event >= timeout:
                    self.start_election()
                    return


class CountsItsCallers(ConsensusModule):
    """Its ``get_state`` and ``submit`` note every call in the trace: calls
    that do more than answer from the node's fields, where the grader
    predicts that they only answer."""

    def get_state(self):
        self.emit("note", detail="get_state")
        return super().get_state()

    def submit(self, command):
        self.emit("note", detail=f"submit {command!r}")
        return super().submit(command)


class LiesAboutItsChannel(ConsensusModule):
    """Changes its process's copy of a channel (host.HostChannel), which then
    says a value is queued where the channel has none."""

    def start(self):
        ch = self.clock.channel(1)
        ch.items.append(12345)
        ch.try_recv()
        super().start()


class SleepsHoldingItsLock(ConsensusModule):
    """Each AppendEntries thread of a leader sleeps holding ``self.mu``: the
    clock refuses at once, where the scheduler would have switched threads."""

    def send_append_entries(self, peer, args):
        with self.mu:
            self.clock.sleep(0.001)
        super().send_append_entries(peer, args)


class MisnumbersAChannel(ConsensusModule):
    """Skips channel numbers in its process's count: its next channel's
    number is not the one the trusted side gives it."""

    def start(self):
        self.clock.host.channels += 5
        self.clock.channel(1)
        super().start()


class StartsFanOuts(ConsensusModule):
    """``start()`` (a call from the harness) starts two threads besides the
    reference's, each of which starts three more and sleeps: turns sent
    ahead in a batch, some of which start threads of their own."""

    def start(self):
        super().start()
        for k in range(2):
            self.go(self.fan_out, k)

    def fan_out(self, k):
        for j in range(3):
            self.go(self.leaf, k, j)
        self.clock.sleep(0.002)
        self.emit("note", detail=f"fan {k} slept")

    def leaf(self, k, j):
        self.clock.sleep(0.001 * j)
        self.emit("note", detail=f"leaf {k}.{j}")


class NotesHeartbeats(ConsensusModule):
    """Notes every heartbeat it accepts in the trace, where the grader
    predicts that accepting one only resets the election timer."""

    def append_entries(self, args):
        reply = super().append_entries(args)
        if not args.entries and reply.success:
            self.emit("note", detail=f"heartbeat from {args.leader_id}")
        return reply


class NotesAppends(ConsensusModule):
    """Notes every entry it takes as follower, where the grader predicts
    that an AppendEntries only appends, commits and persists as the kit's does."""

    def append_entries(self, args):
        reply = super().append_entries(args)
        if args.entries and reply.success:
            self.emit("note", detail=f"{len(args.entries)} entries from {args.leader_id}")
        return reply


class NotesHeartbeatReplies(ConsensusModule):
    """Notes every heartbeat reply it reads as leader, where the grader
    predicts that reading one changes nothing."""

    def send_append_entries(self, peer, args):
        super().send_append_entries(peer, args)
        if not args.entries:
            self.emit("note", detail=f"heartbeat reply from {peer}")


class NotesHeartbeatRounds(ConsensusModule):
    """Notes every round of heartbeats it sends as leader, where the grader
    predicts that a round only starts a thread per peer."""

    def send_heartbeats(self):
        self.emit("note", detail="a round")
        super().send_heartbeats()


class NotesApplies(ConsensusModule):
    """Notes every wake of its applier, where the grader predicts that a
    wake only applies what is committed."""

    def run_applier(self):
        apply = self.apply

        def noted(msg):
            self.emit("note", detail=f"applied {msg.command_index}")
            apply(msg)
        self.apply = noted
        super().run_applier()


class NotesCommits(ConsensusModule):
    """Notes, as leader, every commit a reply brings, where the grader
    predicts only the kit's own note of it."""

    def advance_commit_index(self):
        before = self.commit_index
        super().advance_commit_index()
        if self.commit_index != before:
            self.emit("note", detail=f"committed up to {self.commit_index}")


class NotesSubmits(ConsensusModule):
    """Notes every command it takes as leader, where the grader predicts
    that a submit only appends, persists, notes the append and triggers a round."""

    def submit(self, command):
        answer = super().submit(command)
        if answer[2]:
            self.emit("note", detail=f"took {command!r}")
        return answer


class ForgesAMiss(ConsensusModule):
    """Writes a "miss" frame of its own (what its process sends when a tick
    predicted idle did more) though no tick was predicted."""

    def start(self):
        from raftkit.isolation import wire
        self.clock.host.outbox.append(wire.frame(("miss", 1, "forged")))
        super().start()
