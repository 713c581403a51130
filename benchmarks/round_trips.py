"""What isolation costs the grader, and on what: exercises' batteries on
the reference node, run in-process and then with every node in a process
of its own as the grader runs them (idle election-timer ticks predicted;
node processes unsandboxed, without the grader's worker processes), each
scenario on its fixed seeds and two more (101, 202). Prints both wall
times, the node processes started, the ticks predicted, and the frames the
trusted process sent to node processes by kind: each is one round trip (a
thread's turn, an answer to a request, a handler, a call from the harness).
The frames are counted by wrapping ``NodeHost``'s send and request
handlers in this process only (a reply deferred on a prediction, as a
heartbeat's, is not a round trip).

    python benchmarks/round_trips.py [EXERCISE ...]      (default: 1-6)
"""

import collections
import contextlib
import sys

from predicted_ticks import battery_time

import raftkit
from raftkit.isolation import process
from raftkit.isolation.process import class_spec, hosted_class


@contextlib.contextmanager
def counting(frames: collections.Counter):
    """While in it, ``frames`` counts what every ``NodeHost`` sends, by kind."""
    send, request, spawn = process.NodeHost._send, process.NodeHost._request, process.Template.spawn
    deferred = process.NodeHost._ends_after_reply

    def counted_send(host, msg, *args, **kwargs):
        if msg is not None and msg[0] == "job":
            what, payload = msg[4], msg[5]
            frames[f"call {payload[0][0]}()" if what == "call" else
                   {"run": "a thread's turn", "handle": "an RPC handler"}.get(what, what)] += 1
        return send(host, msg, *args, **kwargs)

    def counted_request(host, op, args):
        frames[f"answer to {op}"] += 1
        return request(host, op, args)

    def counted_deferral(host, *args):
        if deferred(host, *args):
            frames["answer to call"] -= 1  # its answer waits for the next frame
            return True
        return False

    def counted_spawn(template, *args):
        frames["(node processes)"] += 1
        return spawn(template, *args)

    process.NodeHost._send, process.NodeHost._request = counted_send, counted_request
    process.NodeHost._ends_after_reply, process.Template.spawn = counted_deferral, counted_spawn
    try:
        yield
    finally:
        process.NodeHost._send, process.NodeHost._request, process.Template.spawn = send, request, spawn
        process.NodeHost._ends_after_reply = deferred


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
