"""The floor under an isolated event: one round trip between two processes
on one core, as a node process and the trusted side make for every
scheduler event. Four ways: a byte each way over a pipe (the kernel's
part); a fixed-size ``struct`` frame each way with blocking reads (what a
leaner protocol could cost in Python), bare and with the least checking
and switching a protocol needs; and a frame each way through
``raftkit.isolation.wire`` shaped like an isolated event's (a reply, then a
sleep request with a short report), read as the trusted side reads (wait,
read ahead, unpickle with the safe unpickler). Compare with an in-process event's cost
(``isolation_speed.py``) and an isolated one's (``isolation_cpu.py``).

    python benchmarks/wire_roundtrip.py [ROUND_TRIPS]
"""

import os
import select
import socket
import struct
import sys
import time

from raftkit.isolation import wire


def _pinned():
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def pipe_round_trip(n: int) -> float:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        _pinned()
        for _ in range(n):
            os.read(r1, 64)
            os.write(w2, b"x")
        os._exit(0)
    _pinned()
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(w1, b"x")
        os.read(r2, 64)
    wall = time.perf_counter() - t0
    os.waitpid(pid, 0)
    return wall / n


_FIXED = struct.Struct("<BIdd")  # kind, job, a time, a value


def struct_round_trip(n: int) -> float:
    trusted, node = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        _pinned()
        for _ in range(n):
            _, key, _, _ = _FIXED.unpack(os.read(node.fileno(), _FIXED.size))
            os.write(node.fileno(), _FIXED.pack(2, key, 0.01, 3))
        os._exit(0)
    _pinned()
    t0 = time.perf_counter()
    for k in range(n):
        os.write(trusted.fileno(), _FIXED.pack(1, k, 1.25, 0))
        _FIXED.unpack(os.read(trusted.fileno(), _FIXED.size))
    wall = time.perf_counter() - t0
    os.waitpid(pid, 0)
    return wall / n


def lean_round_trip(n: int) -> float:
    """A struct frame each way with the least work a checked protocol does
    around it: the node process answers from a thread (a greenlet) that
    waits, reporting its log's length; the trusted side reads with
    ``recv_into``, checks the record's kind, job and report against its
    mirror, and hands the request to the node thread's twin (a greenlet
    there too) and back, as its clock does."""
    import greenlet
    trusted, node = socket.socketpair()
    size = _FIXED.size
    pid = os.fork()
    if pid == 0:
        _pinned()
        fd, buf, log, reader = node.fileno(), bytearray(size), [1, 2, 3], greenlet.getcurrent()

        def thread():  # a node thread: asks, and waits for the answer the reader hands it
            while True:
                os.write(fd, _FIXED.pack(3, 7, 0.01, len(log)))
                reader.switch()
        asker = greenlet.greenlet(thread)
        asker.switch()
        for _ in range(n):
            node.recv_into(buf, size)
            kind, key, now, value = _FIXED.unpack(buf)
            if kind == 2 and key == 7:
                asker.switch(value)
        os._exit(0)
    _pinned()
    fd, buf, mirror, hub = trusted.fileno(), bytearray(size), {"log": 3}, greenlet.getcurrent()
    twin = greenlet.greenlet(lambda: [hub.switch() for _ in iter(int, 1)])  # performs the request, then parks
    t0 = time.perf_counter()
    for _ in range(n):
        if trusted.recv_into(buf, size) != size:
            raise RuntimeError("a short frame")
        kind, key, due, report = _FIXED.unpack(buf)
        if kind != 3 or key != 7 or not 0 <= report <= 1 << 20 or due != due:
            raise RuntimeError("a bad request")
        if report != mirror["log"]:
            mirror["log"] = report
        twin.switch()
        os.write(fd, _FIXED.pack(2, key, 1.25, 0))
    wall = time.perf_counter() - t0
    os.waitpid(pid, 0)
    return wall / n


def wire_round_trip(n: int) -> float:
    trusted, node = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        _pinned()
        reader = wire.Reader(node.fileno(), trusted=True)
        for _ in range(n):
            msg = reader.recv()
            wire.send(node.fileno(), ("req", msg[1], "sleep", (0.01, None), 3))
        os._exit(0)
    _pinned()
    reader = wire.Reader(trusted.fileno())
    t0 = time.perf_counter()
    for k in range(n):
        wire.send(trusted.fileno(), ("reply", k, 1.25, None, None))
        while not reader.has_frame():
            select.select([trusted.fileno()], [], [], 1.0)
            reader.read_ready()
        reader.recv(1.0)
    wall = time.perf_counter() - t0
    os.waitpid(pid, 0)
    return wall / n


def main(n: int = 20_000) -> None:
    print(f"one round trip between two processes on one core: a byte over a pipe "
          f"{pipe_round_trip(n) * 1e6:.1f} us, a struct frame {struct_round_trip(n) * 1e6:.1f} us "
          f"({lean_round_trip(n) * 1e6:.1f} us with the least checking and switching), "
          f"a frame through raftkit.isolation.wire {wire_round_trip(n) * 1e6:.1f} us "
          f"(wall, both processes' work; {n} round trips)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
