"""Linearizability checking, the Porcupine way.

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

**Fair turns.** One hard key must not starve the others (Porcupine runs one
goroutine per partition). Each key's search is a generator that pauses every
``CLOCK_EVERY`` steps; the keys take turns round robin, so each undecided key
gets an equal share of the time budget. Once a key is proven illegal, the round
in progress is finished (every key had its turn, so cheap verdicts are kept)
and the search stops: one illegal key answers for the whole history. Keys left
undecided are "unknown", and ``CheckResult.reasons`` says why: timed out, never
reached, stopped after another key was illegal, or the memo cap.

**Bounded memory.** The memo is what grows. Its size is estimated as it grows
(bitset bytes plus set slot; for each new state, the state itself and its
set), and checked at the end of each turn. When all live memos together pass
``max_memo_bytes`` (default ``MAX_MEMO_BYTES``, 256 MiB; a search stopped there
peaked at about 250 MB of process memory in ``benchmarks/lincheck_hard.py``),
the key with the largest memo is given up as "unknown" (reason: the memo cap)
and its memory freed, so the check ends with an answer instead of running out
of memory.

**Models.** The checker is generic in the sequential model
(:mod:`raftkit.seqmodel`): the key/value store by default, a read/write/cas
register with ``model=REGISTER_MODEL``, or your own.

Conventions
-----------
* Tie rule: events are sorted by time and, at equal times, calls come before
  returns. An operation that starts at the very instant another one ends is
  therefore treated as *concurrent* with it (it may be ordered either way).
  This is the permissive choice (as in Porcupine): a violation is never
  reported because of an exact tie of timestamps.
* ``ret=None`` means the operation timed out: it may or may not have taken
  effect. It returns at +infinity and its output is unknown, so the model
  accepts any output. A timed-out read (``model.droppable(op)``: a ``get`` for
  the KV model) cannot change anything and can always be placed last, so it is
  left out of the search and appended at the end of the key's linearization.
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
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from sys import getsizeof

from .seqmodel import KV_MODEL, REGISTER_MODEL, KVModel, Model, Operation, RegisterModel, describe

__all__ = ["Operation", "CheckResult", "Failure", "Model", "KVModel", "KV_MODEL", "RegisterModel",
           "REGISTER_MODEL", "check", "describe", "random_history", "hard_history", "MAX_MEMO_BYTES"]

KINDS = KV_MODEL.kinds
INF = math.inf
CLOCK_EVERY = 256  # search steps in one turn (between two looks at the clock)
MAX_MEMO_BYTES = 256 * 2**20  # default cap on the (estimated) memo size of all live searches
NEW_STATE_BYTES = getsizeof(set()) + 50  # a state's own set of bitsets and its dict slot


# --------------------------------------------------------------------------- results

@dataclass
class Failure:
    """Why one key is not linearizable: how far the search got and what blocked it."""

    key: Hashable
    prefix: list[Operation]        # longest linearizable prefix found
    state: object                  # model state after that prefix
    unplaced: list[Operation]      # everything not in the prefix
    candidates: list[tuple[Operation, str]]  # ops that could go next, and why each fails
    model: Model = KV_MODEL        # for the labels

    def __str__(self) -> str:
        show = self.model.describe
        lines = [f"key {self.key!r} is not linearizable.",
                 f"  longest linearizable prefix ({len(self.prefix)} ops): "
                 + (", ".join(show(o) for o in self.prefix) or "(none)"),
                 f"  state after it: {self.model.describe_state(self.state)}",
                 f"  {len(self.unplaced)} op(s) cannot be placed; the next one must be one of:"]
        lines += [f"    {show(o)} [client {o.client_id}, {o.call:g}..{o.end:g}]: {why}"
                  for o, why in self.candidates]
        return "\n".join(lines)


@dataclass
class CheckResult:
    """Outcome of :func:`check`: overall and per key.

    ``reasons`` says, for each "unknown" key, why it was not decided: the time
    budget ran out during its search ("timed out ..."), before its first turn
    ("never reached ..."), the search stopped because another key was illegal
    ("stopped ..."), or the memo cap ("memo cap ...")."""

    status: str                                      # "ok" | "illegal" | "unknown"
    per_key: dict[Hashable, str] = field(default_factory=dict)
    linearization: dict[Hashable, list[Operation]] = field(default_factory=dict)
    failure: dict[Hashable, Failure] = field(default_factory=dict)
    elapsed: float = 0.0
    reasons: dict[Hashable, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def undecided(self, why: str) -> list[Hashable]:
        """Unknown keys whose reason starts with ``why`` ("timed out", "never reached",
        "stopped", "memo cap")."""
        return [k for k, r in self.reasons.items() if r.startswith(why)]

    def __str__(self) -> str:
        head = (f"{self.status}: {len(self.per_key)} key(s) "
                f"({sum(s == 'ok' for s in self.per_key.values())} ok) in {self.elapsed:.3f}s")
        return "\n".join([head, *map(str, self.failure.values()),
                          *(f"key {k!r} unknown: {r}" for k, r in self.reasons.items())])


# --------------------------------------------------------------------------- search

@dataclass
class _Outcome:
    status: str
    order: list[int]      # complete linearization (ok) or longest prefix (illegal)


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


def _entry_bytes(n_ops: int) -> int:
    """Estimated bytes of one memo entry: a bitset int of n bits and its set slot."""
    return 24 + 4 * (n_ops // 30 + 1) + 48


def _search(model: Model, ops: Sequence[Operation]) -> Generator[int, None, _Outcome]:
    """Wing & Gong backtracking with Lowe's (bitset, state) cache, for one partition.

    A generator: every CLOCK_EVERY steps it pauses, yielding the memo's
    estimated size in bytes, so that partitions can take turns; it returns
    the outcome."""
    ev = _EventList(ops)
    nxt, op_of, match, head = ev.nxt, ev.op, ev.match, 0
    step = model.step
    bit = [1 << i for i in range(len(ops))]
    cache: dict[object, set[int]] = {}       # state -> bitsets seen with it
    calls: list[tuple[int, object]] = []     # stack of (call node, state before it)
    longest: list[int] = []
    state, linearized = model.init(), 0
    entry, memo_bytes = _entry_bytes(len(ops)), 0
    node = nxt[head]
    budget = CLOCK_EVERY
    while nxt[head] != ev.tail:
        budget -= 1
        if budget == 0:
            yield memo_bytes                       # our turn is over
            budget = CLOCK_EVERY
        if match[node] >= 0:                       # a call: try to place it now
            i = op_of[node]
            ok, new_state = step(state, ops[i])
            if ok:
                new_linearized = linearized | bit[i]
                try:
                    seen = cache.get(new_state)
                except TypeError:
                    raise TypeError(f"model states must be hashable, got {type(new_state).__name__}: "
                                    f"{new_state!r}") from None
                if seen is None:
                    seen = cache[new_state] = set()
                    memo_bytes += NEW_STATE_BYTES + getsizeof(new_state)
                if new_linearized not in seen:     # Lowe: never enter a (set, state) twice
                    seen.add(new_linearized)
                    memo_bytes += entry
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
    return Failure(key, [ops[i] for i in prefix], state, rest, candidates, model)


def _validate(history: Iterable[Operation], model: Model) -> list[Operation]:
    ops = list(history)
    validate = getattr(model, "validate", None)
    for op in ops:
        if not isinstance(op, Operation):
            raise TypeError(f"expected an Operation, got {type(op).__name__}: {op!r}")
        if not (isinstance(op.call, int | float) and math.isfinite(op.call)
                and (op.ret is None or isinstance(op.ret, int | float) and not math.isnan(op.ret))):
            raise ValueError(f"call must be a finite number and ret a number or None: {op!r}")
        if op.ret is not None and op.ret < op.call:
            raise ValueError(f"operation returns before it is called: {op!r}")
        if validate is not None:
            validate(op)
    return ops


def _droppable(model: Model) -> Callable[[Operation], bool]:
    """The model's ``droppable``; for a model without one, a timed-out "get"."""
    return getattr(model, "droppable", None) or (lambda op: op.kind == "get" and op.timed_out)


class _Turns:
    """The partitions' searches taking turns round robin, within the time budget
    and the memo cap; records each verdict in ``result``."""

    def __init__(self, model: Model, parts: dict[Hashable, list[Operation]], result: CheckResult,
                 max_memo_bytes: float, progress: Callable[[Hashable, str], None] | None):
        droppable = _droppable(model)
        self.model, self.result, self.cap, self.progress = model, result, max_memo_bytes, progress
        self.searched = {k: [op for op in part if not droppable(op)] for k, part in parts.items()}
        self.dropped = {k: [op for op in part if droppable(op)] for k, part in parts.items()}
        self.ring = deque(parts)                 # undecided keys, next turn first
        self.searches: dict[Hashable, Generator[int, None, _Outcome]] = {}
        self.memo: dict[Hashable, int] = {}      # estimated memo bytes per live search
        self.illegal = False
        result.per_key.update(dict.fromkeys(parts, "unknown"))

    def run(self, deadline: float, timeout: float | None) -> None:
        while self.ring:
            if time.monotonic() >= deadline:
                self.give_up(lambda k: f"timed out after {timeout:g} s" if k in self.searches
                             else f"never reached: the {timeout:g} s budget ran out first")
                return
            self.turn(self.ring.popleft())
            if sum(self.memo.values()) > self.cap:
                biggest = max(self.memo, key=self.memo.__getitem__)
                self.ring.remove(biggest)
                self.decide(biggest, "unknown", f"memo cap reached: the searches' memos passed "
                            f"{self.cap / 2**20:g} MiB (max_memo_bytes)")
            if self.illegal and len(self.searches) == len(self.ring):  # every key had a turn
                self.give_up(lambda k: "stopped: another key is not linearizable")
                return

    def turn(self, key: Hashable) -> None:
        """One turn of ``key``'s search (started on its first turn)."""
        if key not in self.searches:
            self.searches[key] = _search(self.model, self.searched[key])
        try:
            self.memo[key] = next(self.searches[key])
            self.ring.append(key)
        except StopIteration as stop:
            outcome: _Outcome = stop.value
            ops = self.searched[key]
            if outcome.status == "ok":
                self.result.linearization[key] = [ops[i] for i in outcome.order] + self.dropped[key]
            else:
                self.result.failure[key] = _explain(self.model, key, ops, outcome.order)
                self.illegal = True
            self.decide(key, outcome.status)

    def decide(self, key: Hashable, status: str, reason: str = "") -> None:
        self.result.per_key[key] = status
        self.searches.pop(key, None)             # frees its memo
        self.memo.pop(key, None)
        if reason:
            self.result.reasons[key] = reason
        if self.progress is not None:
            self.progress(key, status)

    def give_up(self, why: Callable[[Hashable], str]) -> None:
        """Every undecided key is "unknown", for the reason ``why(key)``."""
        for key in self.ring:
            self.decide(key, "unknown", why(key))
        self.ring.clear()


def check(history: Iterable[Operation], timeout: float | None = None, *,
          model: Model = KV_MODEL, max_memo_bytes: float = MAX_MEMO_BYTES,
          progress: Callable[[Hashable, str], None] | None = None) -> CheckResult:
    """Is ``history`` linearizable with respect to ``model``? Checks each key separately.

    ``timeout`` is a wall-clock budget in seconds for the whole check, shared
    fairly: undecided keys take turns. ``max_memo_bytes`` caps the estimated
    memo size of all live searches. Keys not decided are "unknown" and
    ``result.reasons`` says why. Overall status: "illegal" if any key is
    illegal (the search stops after the round that found it), else "unknown"
    if any key is unknown, else "ok". ``progress(key, status)`` is called as
    each key is decided.
    """
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 (or None), got {timeout!r}")
    if not max_memo_bytes > 0:
        raise ValueError(f"max_memo_bytes must be > 0, got {max_memo_bytes!r}")
    start = time.monotonic()
    result = CheckResult("ok")
    parts = model.partition(_validate(history, model))
    _Turns(model, parts, result, max_memo_bytes, progress).run(
        INF if timeout is None else start + timeout, timeout)
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


def hard_history(n_ops: int = 2000, n_clients: int = 50, n_keys: int = 10, bad_keys: int = 1,
                 seed: int = 0, timeout_rate: float = 0.02) -> list[Operation]:
    """A many-client history (``random_history``) with ``bad_keys`` keys made non-linearizable.

    ``timeout_rate`` of the operations lose their reply: a timed-out write stays
    concurrent with everything after it, which is what makes the search hard.

    In each bad key, one completed ``get`` in the second half of the key's history is
    made to return a *stale* value: one the key really held, but before a later
    write had finished (a read served by a deposed leader). Proving that illegal
    means ruling out every order of the concurrent operations before it.
    """
    ops = random_history(n_ops, n_clients, n_keys, seed, kinds=KINDS, timeout_rate=timeout_rate)
    rng = random.Random(seed)
    for key in sorted({op.key for op in ops})[:bad_keys]:
        mine = [i for i, op in enumerate(ops) if op.key == key]
        gets = [i for i in mine[len(mine) // 2:] if ops[i].kind == "get" and not ops[i].timed_out]
        i = rng.choice(gets)
        older = {ops[j].output for j in mine if ops[j].kind != "put" and ops[j].end < ops[i].call - 1.0}
        stale = sorted(older - {ops[i].output, None}) or ["never-written"]
        ops[i] = Operation(ops[i].client_id, "get", key, None, rng.choice(stale), ops[i].call, ops[i].ret)
    return ops
