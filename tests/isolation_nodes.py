"""Node classes for tests/test_isolation.py: they must live in a module, so
that a node process can import them. Some are hostile on purpose."""

from __future__ import annotations

import os
import pickle
import signal
import struct

from raftkit.raft import ConsensusModule

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
