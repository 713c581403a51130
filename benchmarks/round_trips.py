"""What isolation costs the grader, and on what: exercises' batteries on
the reference node, run in-process and then with every node in a process
of its own as the grader runs them (idle election-timer ticks predicted;
node processes unsandboxed, without the grader's worker processes), each
scenario on its fixed seeds and two more (101, 202). Prints both wall
times, the node processes started, the ticks predicted, and the frames the
trusted process sent to node processes by kind: each is one round trip (a
thread's turn, an answer to a request, a handler, a call from the harness).
The frames are counted by wrapping ``NodeHost``'s send in this process
only: a frame deferred on a prediction (a heartbeat's handler, a reply
read, a heartbeat round's answer) rides with a later one and is not a
round trip; a flush of such frames alone is.

    python benchmarks/round_trips.py [EXERCISE ...]      (default: 1-6)
"""

import collections
import contextlib
import sys

from cores import on_one_core
from predicted_ticks import battery_time

import raftkit
from raftkit.isolation import process
from raftkit.isolation.process import class_spec, hosted_class


@contextlib.contextmanager
def counting(frames: collections.Counter):
    """While in it, ``frames`` counts what every ``NodeHost`` writes to its
    node process and then waits on, by kind: a job, or the answer to a
    request (an answer deferred on a prediction rides with a later frame,
    and is not counted), and the node processes started."""
    send, request, spawn = process.NodeHost._send, process.NodeHost._request, process.Template.spawn
    ops = {}

    def counted_request(host, op, args):
        ops[id(host)] = op  # (the request the next answer written is for: a twin answers its own at once)
        return request(host, op, args)

    def counted_send(host, msg, *args, **kwargs):
        if msg is None:
            if host.deferred:
                frames["predicted frames flushed"] += 1
        elif msg[0] == "job":
            what, payload = msg[4], msg[5]
            frames[f"call {payload[0][0]}()" if what == "call" else
                   {"run": "a thread's turn", "handle": "an RPC handler"}.get(what, what)] += 1
        elif msg[0] == "reply":
            frames[f"answer to {ops.get(id(host), '?')}"] += 1
        else:
            frames[msg[0]] += 1
        return send(host, msg, *args, **kwargs)

    def counted_spawn(template, *args):
        frames["(node processes)"] += 1
        return spawn(template, *args)

    process.NodeHost._send, process.NodeHost._request, process.Template.spawn = (counted_send, counted_request,
                                                                                 counted_spawn)
    try:
        yield
    finally:
        process.NodeHost._send, process.NodeHost._request, process.Template.spawn = send, request, spawn


@on_one_core
def main(exercises=range(1, 7)) -> None:
    exercises = list(exercises)
    inproc, *_ = battery_time(exercises, raftkit.ConsensusModule)
    frames = collections.Counter()
    with counting(frames):
        isolated, _, predicted, *_ = battery_time(exercises, hosted_class(class_spec(raftkit.ConsensusModule),
                                                                          predict=True))
    processes = frames.pop("(node processes)", 0)
    total = sum(frames.values())
    print(f"exercises {', '.join(map(str, exercises))}: in-process {inproc:.1f} s, isolated {isolated:.1f} s "
          f"({isolated / inproc:.1f}x); {processes} node processes, {predicted} ticks predicted, "
          f"{total} round trips:")
    for kind, count in frames.most_common():
        print(f"  {count:8d}  {100 * count / total:4.1f}%  {kind}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or range(1, 7))
