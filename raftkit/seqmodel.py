"""Operations and the sequential models the linearizability checker tests them against.

An :class:`Operation` is one client call as seen from outside: who called it,
what it asked (``kind``, ``key``, ``value``), what it got back (``output``)
and when it was called and returned (``ret=None``: it timed out, the client
never learned whether it took effect).

A *model* is the sequential specification: the object as if it ran one
operation at a time. The checker needs these seven members (subclass
:class:`KeyedModel` to get sensible defaults for all but ``init`` and ``step``):

``kinds``
    the operation kinds the model accepts (a tuple of strings).
``validate(op)``
    raise ``ValueError`` with a clear message if ``op`` is malformed.
``partition(history)``
    split the history into independent parts (``{part: [ops]}``); each is
    checked on its own (linearizability is local, Herlihy & Wing 1990).
``init()`` / ``step(state, op) -> (ok, new_state)``
    the state before any operation, and one operation applied to a state:
    ``ok`` says whether the output ``op`` got is possible there. States must be
    hashable and compare by value (the search remembers (set, state) pairs).
``droppable(op)``
    ``True`` for a timed-out operation that can change nothing (a read): the
    checker leaves it out of the search and places it last.
``describe(op)`` / ``describe_state(state)``
    short labels used in reports and drawings.

Two models ship: :class:`KVModel` (get/put/append on string values, the
MIT 6.5840 key/value service) and :class:`RegisterModel` (read/write/cas, the
register Jepsen and Knossos test).

>>> KV_MODEL.describe(Operation(0, "append", "x", "b", "ab", 0.0, 1.0))
'append(x,b)->ab'
>>> REGISTER_MODEL.describe(Operation(0, "cas", "r", (1, 3), True, 0.0, 1.0))
'cas(r,1->3)->ok'
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = ["Operation", "Model", "KeyedModel", "KVModel", "RegisterModel",
           "KV_MODEL", "REGISTER_MODEL", "describe"]

INF = math.inf
S = TypeVar("S")


@dataclass(frozen=True)
class Operation:
    """One client operation, as observed from outside."""

    client_id: int
    kind: str                # KV: "get" | "put" | "append"; register: "read" | "write" | "cas"
    key: Hashable
    value: Any               # the argument (None for reads); cas: (expected, new)
    output: Any              # what the call returned; None: not observed
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


def _show(x: Any) -> str:
    return "?" if x is None else "''" if x == "" else str(x)


def describe(op: Operation) -> str:
    """Short label in the shipped models' notation (``put(x,1)``, ``get(x)->1``,
    ``cas(r,1->3)->ok``; ``?`` = unknown), ``kind(key,value)->output`` otherwise."""
    for model in (KV_MODEL, REGISTER_MODEL):
        if op.kind in model.kinds:
            return model.describe(op)
    return _GENERIC.describe(op)


class Model(Protocol[S]):
    """A sequential specification (see the module docstring for each member)."""

    kinds: tuple[str, ...]

    def validate(self, op: Operation) -> None: ...
    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]: ...
    def init(self) -> S: ...
    def step(self, state: S, op: Operation) -> tuple[bool, S]: ...
    def droppable(self, op: Operation) -> bool: ...
    def describe(self, op: Operation) -> str: ...
    def describe_state(self, state: S) -> str: ...


class KeyedModel:
    """Defaults for a model of one independent object per key: partition by
    key, accept ``kinds``, drop nothing, generic labels. Override ``init`` and
    ``step`` (and whatever else differs)."""

    kinds: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()       # kinds that change nothing: droppable when timed out
    needs_value: tuple[str, ...] = ()  # kinds whose ``value`` must not be None

    def validate(self, op: Operation) -> None:
        if self.kinds and op.kind not in self.kinds:
            raise ValueError(f"unknown operation kind {op.kind!r} (expected one of "
                             f"{', '.join(self.kinds)}) in {op!r}")
        if op.kind in self.needs_value and op.value is None:
            raise ValueError(f"{op.kind} needs a value: {op!r}")

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        parts: dict[Hashable, list[Operation]] = {}
        for op in history:
            parts.setdefault(op.key, []).append(op)
        return parts

    def droppable(self, op: Operation) -> bool:
        return op.timed_out and op.kind in self.reads

    def describe(self, op: Operation) -> str:
        args = op.key if op.value is None else f"{op.key},{op.value}"
        return f"{op.kind}({args})->{_show(op.output)}"

    def describe_state(self, state: Any) -> str:
        return repr(state)


class KVModel(KeyedModel):
    """One string register per key: the sequential spec of a get/put/append store.
    A key never written reads as ``""``; ``output=None`` accepts any result."""

    kinds = ("get", "put", "append")
    reads = ("get",)
    needs_value = ("put", "append")

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
        if op.kind == "get":
            return f"get({op.key})->{_show(op.output)}"
        if op.kind == "put":
            return f"put({op.key},{op.value})" + ("?" if op.timed_out else "")
        return f"append({op.key},{op.value})->{_show(op.output)}"


class RegisterModel(KeyedModel):
    """One register per key with read, write and compare-and-set (Jepsen's model).

    * ``read``: ``output`` is the value read; the register starts as ``initial``
      (``None``, Jepsen's nil). A read that returned nil has ``output=None``: in
      this model that is the value read, not "unknown" (a read whose result is
      unknown timed out and is dropped).
    * ``write``: ``value`` is written; the output is ignored.
    * ``cas``: ``value = (expected, new)``; ``output`` is ``True`` if it swapped,
      ``False`` if it found another value, ``None`` if not observed.
    """

    kinds = ("read", "write", "cas")
    reads = ("read",)
    needs_value = ("write", "cas")

    def __init__(self, initial: Hashable = None):
        self.initial = initial

    def init(self) -> Hashable:
        return self.initial

    def validate(self, op: Operation) -> None:
        super().validate(op)
        if op.kind == "cas" and not (isinstance(op.value, tuple) and len(op.value) == 2):
            raise ValueError(f"cas needs value=(expected, new): {op!r}")

    def step(self, state: Hashable, op: Operation) -> tuple[bool, Hashable]:
        if op.kind == "read":
            return op.output == state, state
        if op.kind == "write":
            return True, op.value
        expected, new = op.value
        swapped = state == expected
        if op.output is not None and op.output != swapped:
            return False, state
        return True, new if swapped else state

    def describe(self, op: Operation) -> str:
        if op.kind == "read":
            return f"read({op.key})->" + ("?" if op.timed_out else "nil" if op.output is None else str(op.output))
        if op.kind == "write":
            return f"write({op.key},{op.value})" + ("?" if op.timed_out else "")
        expected, new = op.value
        result = "?" if op.output is None else "ok" if op.output else "fail"
        return f"cas({op.key},{expected}->{new})->{result}"

    def describe_state(self, state: Hashable) -> str:
        return "nil" if state is None else repr(state)


KV_MODEL = KVModel()
REGISTER_MODEL = RegisterModel()
_GENERIC = KeyedModel()
