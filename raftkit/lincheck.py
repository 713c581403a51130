"""Linearizability checking for key/value histories, the Porcupine way.

Theory of operation
-------------------
A *history* is a list of operations, each with the time it was called and the
time it returned. It is *linearizable* if we can pick one instant inside each
operation's [call, ret] interval such that running the operations one at a
time, in the order of those instants, against a plain sequential key/value
store gives every operation exactly the result it got in the history.

**Wing & Gong search.** Turn the history into a time-ordered linked list of
call and return events. Every operation whose call comes before the first
return still in the list is a *candidate* to go next (it had started before
the earliest pending operation had finished). Walk the list from the front:
at a call, try that operation on the model; if the model accepts it, unlink
("lift") its call and return, push it on a stack and restart from the front.
Reaching a return means that operation should already have been placed and
no candidate before it works: pop the stack ("unlift" the last choice, restore
the state) and try the next candidate after it. An empty list means the stack
is a linearization; an empty stack at a return means there is none.

**Lowe's memoization.** The search reaches the same situation by many paths:
the same *set* of placed operations leading to the same model state. What can
happen next depends only on that pair, so we remember every (set, state) pair
entered and never enter one twice. The set is a bitset (a Python int, bit i =
operation i) and the state a string. The cache is that set of (bitset, state)
pairs, stored grouped by state: ``cache[state]`` is the set of bitsets seen
with that state (same content as a set of tuples, but no tuple per entry:
less memory and garbage-collector work, ~25% faster on big searches). This
turns the factorial worst case into something usually close to linear.

**Partitioning.** Operations on different keys never interact, and a history
is linearizable iff each per-key sub-history is (linearizability is *local*,
Herlihy & Wing 1990). So each key is checked on its own: ten searches over 100
operations are far cheaper than one over 1000.

Conventions
-----------
* Tie rule: events are sorted by time and, at equal times, calls come before
  returns. An operation that starts at the very instant another one ends is
  therefore treated as *concurrent* with it (it may be ordered either way).
  This is the permissive choice (as in Porcupine): a violation is never
  reported because of an exact tie of timestamps.
* ``ret=None`` means the operation timed out: it may or may not have taken
  effect. It returns at +infinity and its output is unknown, so the model
  accepts any output. A timed-out ``get`` cannot change anything and can always
  be placed last, so it is left out of the search and appended at the end of
  the key's linearization.
* ``output=None`` on an operation that did return also means "not observed":
  any result is accepted (``get`` of an absent key should report ``""``).

>>> h = [Operation(0, "put", "x", "1", None, 0.0, 1.0),
...      Operation(1, "get", "x", None, "1", 2.0, 3.0)]
>>> check(h).status
'ok'
>>> check([h[0], Operation(1, "get", "x", None, "", 2.0, 3.0)]).status
'illegal'
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

__all__ = ["Operation", "CheckResult", "Failure", "Model", "KVModel", "KV_MODEL",
           "check", "describe", "random_history"]

KINDS = ("get", "put", "append")
INF = math.inf
CLOCK_EVERY = 256  # search steps between two looks at the wall clock

S = TypeVar("S")


@dataclass(frozen=True)
class Operation:
    """One client operation on the key/value store, as observed from outside."""

    client_id: int
    kind: str                # "get" | "put" | "append"
    key: str
    value: str | None        # argument of put/append (None for get)
    output: str | None       # get: value read ("" if absent); append: new value; put: None
    call: float
    ret: float | None        # None: timed out, never returned

    @property
    def timed_out(self) -> bool:
        return self.ret is None

    @property
    def end(self) -> float:
        """Return time, +infinity for a timed-out operation."""
        return INF if self.ret is None else self.ret

    def __str__(self) -> str:
        return describe(self)


def describe(op: Operation) -> str:
    """Short label: ``put(x,1)``, ``get(x)->1``, ``append(x,b)->ab``; ``?`` = unknown."""
    def show(s: str | None) -> str:
        return "?" if s is None else (s if s != "" else "''")

    if op.kind == "get":
        return f"get({op.key})->{show(op.output)}"
    if op.kind == "put":
        return f"put({op.key},{op.value})" + ("?" if op.timed_out else "")
    return f"append({op.key},{op.value})->{show(op.output)}"


# --------------------------------------------------------------------------- model

class Model(Protocol[S]):
    """A sequential specification, split into independent partitions."""

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]: ...
    def init(self) -> S: ...
    def step(self, state: S, op: Operation) -> tuple[bool, S]: ...
    def describe(self, op: Operation) -> str: ...
    def describe_state(self, state: S) -> str: ...


class KVModel:
    """One string register per key: the sequential spec of a get/put/append store."""

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        parts: dict[Hashable, list[Operation]] = {}
        for op in history:
            parts.setdefault(op.key, []).append(op)
        return parts

    def init(self) -> str:
        return ""

    def step(self, state: str, op: Operation) -> tuple[bool, str]:
        kind, out = op.kind, op.output
        if kind == "get":
            return (out is None or out == state), state
        if kind == "put":
            return True, op.value or ""
        new = state + (op.value or "")
        return (out is None or out == new), new

    def describe(self, op: Operation) -> str:
        return describe(op)

    def describe_state(self, state: str) -> str:
        return repr(state)


KV_MODEL = KVModel()


# --------------------------------------------------------------------------- results

@dataclass
class Failure:
    """Why one key is not linearizable: how far the search got and what blocked it."""

    key: Hashable
    prefix: list[Operation]        # longest linearizable prefix found
    state: str                     # model state after that prefix
    unplaced: list[Operation]      # everything not in the prefix
    candidates: list[tuple[Operation, str]]  # ops that could go next, and why each fails

    def __str__(self) -> str:
        lines = [f"key {self.key!r} is not linearizable.",
                 f"  longest linearizable prefix ({len(self.prefix)} ops): "
                 + (", ".join(describe(o) for o in self.prefix) or "(none)"),
                 f"  state after it: {self.state!r}",
                 f"  {len(self.unplaced)} op(s) cannot be placed; the next one must be one of:"]
        lines += [f"    {describe(o)} [client {o.client_id}, {o.call:g}..{o.end:g}]: {why}"
                  for o, why in self.candidates]
        return "\n".join(lines)


@dataclass
class CheckResult:
    """Outcome of :func:`check`: overall and per key."""

    status: str                                      # "ok" | "illegal" | "unknown"
    per_key: dict[Hashable, str] = field(default_factory=dict)
    linearization: dict[Hashable, list[Operation]] = field(default_factory=dict)
    failure: dict[Hashable, Failure] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        head = (f"{self.status}: {len(self.per_key)} key(s) "
                f"({sum(s == 'ok' for s in self.per_key.values())} ok) in {self.elapsed:.3f}s")
        return "\n".join([head, *map(str, self.failure.values())])


# --------------------------------------------------------------------------- search

class _Deadline:
    """Wall-clock budget shared by all partitions (None = unlimited)."""

    def __init__(self, timeout: float | None):
        self.at = INF if timeout is None else time.monotonic() + timeout

    def passed(self) -> bool:
        return time.monotonic() > self.at


@dataclass
class _Outcome:
    status: str
    order: list[int]      # complete linearization (ok) or longest prefix (illegal/unknown)


class _EventList:
    """The Wing & Gong doubly linked list of call/return events, in arrays.

    Node 0 is the head sentinel, node ``2n+1`` the tail sentinel; nodes in
    between are events sorted by (time, calls-before-returns). ``match[c]`` is
    the return node of call node ``c`` (-1 for return nodes)."""

    def __init__(self, ops: Sequence[Operation]):
        events = sorted([(op.call, 0, i) for i, op in enumerate(ops)]
                        + [(op.end, 1, i) for i, op in enumerate(ops)])
        size = len(events) + 2
        self.tail = size - 1
        self.nxt = list(range(1, size + 1))
        self.prv = list(range(-1, size - 1))
        self.op = [-1] * size
        self.match = [-1] * size
        ret_node = {}
        for node, (_, is_ret, i) in enumerate(events, start=1):
            self.op[node] = i
            if is_ret:
                ret_node[i] = node
        for node, (_, is_ret, i) in enumerate(events, start=1):
            if not is_ret:
                self.match[node] = ret_node[i]

    def lift(self, c: int) -> None:
        """Unlink call node ``c`` and its return."""
        nxt, prv = self.nxt, self.prv
        r = self.match[c]
        nxt[prv[c]] = nxt[c]
        prv[nxt[c]] = prv[c]
        nxt[prv[r]] = nxt[r]
        prv[nxt[r]] = prv[r]

    def unlift(self, c: int) -> None:
        """Relink call node ``c`` and its return (exact reverse of :meth:`lift`)."""
        nxt, prv = self.nxt, self.prv
        r = self.match[c]
        nxt[prv[r]] = r
        prv[nxt[r]] = r
        nxt[prv[c]] = c
        prv[nxt[c]] = c


def _search(model: Model, ops: Sequence[Operation], deadline: _Deadline) -> _Outcome:
    """Wing & Gong backtracking with Lowe's (bitset, state) cache, for one partition."""
    ev = _EventList(ops)
    nxt, op_of, match, head = ev.nxt, ev.op, ev.match, 0
    step = model.step
    bit = [1 << i for i in range(len(ops))]
    cache: dict[object, set[int]] = {}       # state -> bitsets seen with it
    calls: list[tuple[int, object]] = []     # stack of (call node, state before it)
    longest: list[int] = []
    state, linearized = model.init(), 0
    node = nxt[head]
    budget = CLOCK_EVERY
    while nxt[head] != ev.tail:
        budget -= 1
        if budget == 0:
            if deadline.passed():
                return _Outcome("unknown", longest or [op_of[c] for c, _ in calls])
            budget = CLOCK_EVERY
        if match[node] >= 0:                       # a call: try to place it now
            i = op_of[node]
            ok, new_state = step(state, ops[i])
            if ok:
                new_linearized = linearized | bit[i]
                seen = cache.get(new_state)
                if seen is None:
                    seen = cache[new_state] = set()
                if new_linearized not in seen:     # Lowe: never enter a (set, state) twice
                    seen.add(new_linearized)
                    calls.append((node, state))
                    linearized, state = new_linearized, new_state
                    ev.lift(node)
                    node = nxt[head]
                    continue
            node = nxt[node]
        else:                                      # a return: nothing before it works
            if not calls:
                return _Outcome("illegal", longest)
            if len(calls) > len(longest):
                longest = [op_of[c] for c, _ in calls]
                budget = max(1, budget - len(calls) // 64)  # a long copy counts as work
            node, state = calls.pop()
            linearized ^= bit[op_of[node]]
            ev.unlift(node)
            node = nxt[node]
    return _Outcome("ok", [op_of[c] for c, _ in calls])


def _explain(model: Model, key: Hashable, ops: Sequence[Operation], prefix: list[int]) -> Failure:
    """Replay the longest prefix and say why each possible next operation fails."""
    state = model.init()
    for i in prefix:
        _, state = model.step(state, ops[i])
    placed = set(prefix)
    rest = [op for i, op in enumerate(ops) if i not in placed]
    first_ret = min((op.end for op in rest), default=INF)
    candidates = []
    for op in rest:
        if op.call <= first_ret:               # calls before returns at equal times
            ok, _ = model.step(state, op)
            why = ("every continuation after it fails" if ok else
                   f"not possible when {key} = {model.describe_state(state)}")
            candidates.append((op, why))
    return Failure(key, [ops[i] for i in prefix], state, rest, candidates)


def _validate(history: Iterable[Operation]) -> list[Operation]:
    ops = list(history)
    for op in ops:
        if op.kind not in KINDS:
            raise ValueError(f"unknown operation kind {op.kind!r} in {op!r}")
        if op.ret is not None and op.ret < op.call:
            raise ValueError(f"operation returns before it is called: {op!r}")
        if op.kind != "get" and op.value is None:
            raise ValueError(f"{op.kind} needs a value: {op!r}")
    return ops


def check(history: Iterable[Operation], timeout: float | None = None, *,
          model: Model = KV_MODEL) -> CheckResult:
    """Is ``history`` linearizable? Checks each key separately.

    ``timeout`` is a wall-clock budget in seconds for the whole check; keys not
    decided when it runs out are "unknown". Overall status: "illegal" if any key
    is illegal, else "unknown" if any key is unknown, else "ok".
    """
    start = time.monotonic()
    deadline = _Deadline(timeout)
    result = CheckResult("ok")
    for key, part in model.partition(_validate(history)).items():
        searched = [op for op in part if not (op.kind == "get" and op.timed_out)]
        dropped = [op for op in part if op.kind == "get" and op.timed_out]
        if deadline.passed():
            result.per_key[key] = "unknown"
            continue
        outcome = _search(model, searched, deadline)
        result.per_key[key] = outcome.status
        if outcome.status == "ok":
            result.linearization[key] = [searched[i] for i in outcome.order] + dropped
        elif outcome.status == "illegal":
            result.failure[key] = _explain(model, key, searched, outcome.order)
    statuses = set(result.per_key.values())
    result.status = "illegal" if "illegal" in statuses else "unknown" if "unknown" in statuses else "ok"
    result.elapsed = time.monotonic() - start
    return result


# --------------------------------------------------------------------------- generators

def random_history(n_ops: int = 100, n_clients: int = 3, n_keys: int = 2, seed: int = 0, *,
                   kinds: Sequence[str] = KINDS, max_duration: float = 1.0,
                   max_gap: float = 0.1, timeout_rate: float = 0.0) -> list[Operation]:
    """A random history that is linearizable by construction.

    Each client issues operations back to back (random think time, random
    duration); every operation takes effect at a random instant inside its
    interval, and outputs are computed by replaying a sequential store in the
    order of those instants. With ``timeout_rate`` > 0 some operations lose
    their return (``ret=None``), as a client whose RPC timed out would see.
    Returned in call order.
    """
    rng = random.Random(seed)
    keys = [chr(ord("a") + k) if k < 26 else f"k{k}" for k in range(n_keys)]
    now = [0.0] * n_clients
    drafts = []  # (linearization point, client, kind, key, value, call, ret)
    for n in range(n_ops):
        c = rng.randrange(n_clients)
        call = now[c] + rng.uniform(0.0, max_gap)
        ret = call + rng.uniform(0.01, max_duration)
        now[c] = ret
        kind = rng.choice(kinds)
        value = None if kind == "get" else str(n)
        drafts.append((rng.uniform(call, ret), c, kind, rng.choice(keys), value, call, ret))
    store: dict[str, str] = {}
    ops = []
    for _, c, kind, key, value, call, ret in sorted(drafts):
        ok, new = KV_MODEL.step(store.get(key, ""), Operation(c, kind, key, value, None, call, ret))
        store[key] = new
        output = {"get": new, "put": None, "append": new}[kind]
        if rng.random() < timeout_rate:
            output, ret = None, None
        ops.append(Operation(c, kind, key, value, output, call, ret))
    return sorted(ops, key=lambda o: (o.call, o.client_id))
