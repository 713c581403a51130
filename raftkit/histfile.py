"""Histories in files: JSON lines (read and write) and Jepsen's EDN (read).

**JSON lines**: one operation a line, the fields of
:class:`~raftkit.seqmodel.Operation`::

    {"client_id": 0, "kind": "put", "key": "x", "value": "1", "output": null, "call": 0.0, "ret": 1.0}

``ret: null`` is a timed-out operation; lists (a cas's ``[expected, new]``) are
read back as tuples. Blank lines are skipped.

**Jepsen EDN** (``history.edn``): one map per event, in time order, as Jepsen
and Knossos write it: ``{:process 0, :type :invoke, :f :read, :value nil}``.
Each ``:invoke`` is paired with the next ``:ok``, ``:fail`` or ``:info`` of the
same ``:process``. ``:ok``: the operation returned; a read (``:get``/``:read``)
returned the completion's ``:value``, a ``:cas`` swapped, other kinds return
nothing to check. ``:fail``: it certainly did not happen, so it is left out.
``:info`` (or no completion at all): indeterminate, a timed-out operation.
The key is ``:key`` if present (Porcupine's KV logs), else ``default_key``;
with ``independent=True`` every ``:value`` is a ``[key value]`` pair, as
``jepsen.independent`` writes them, and the key is its first half.
Times are ``:time`` if every event has one, else the event's position in the
file (what Porcupine does): the order of events is all linearizability needs.
Parsed with ``edn_format`` (https://github.com/swaroopch/edn_format).

>>> import io
>>> ops = read_edn(io.StringIO('''{:process 0, :type :invoke, :f :write, :value 1}
... {:process 0, :type :ok, :f :write, :value 1}
... {:process 1, :type :invoke, :f :read, :value nil}
... {:process 1, :type :ok, :f :read, :value 1}'''))
>>> [str(op) for op in ops]
['write(x,1)', 'read(x)->1']
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from typing import IO, Any

from .seqmodel import Operation

__all__ = ["read_jsonl", "write_jsonl", "read_edn", "read_history"]

FIELDS = [f.name for f in fields(Operation)]
READS = ("get", "read")

Source = str | os.PathLike | IO[str]


def _text(source: Source) -> str:
    if hasattr(source, "read"):
        return source.read()
    with open(source, encoding="utf-8") as f:
        return f.read()


def _hashable(x: Any) -> Any:
    return tuple(_hashable(v) for v in x) if isinstance(x, list) else x


def write_jsonl(history: Iterable[Operation], target: str | os.PathLike | IO[str]) -> None:
    """Write ``history`` as JSON lines (one operation a line)."""
    lines = "".join(json.dumps(asdict(op)) + "\n" for op in history)
    if hasattr(target, "write"):
        target.write(lines)
    else:
        with open(target, "w", encoding="utf-8") as f:
            f.write(lines)


def read_jsonl(source: Source) -> list[Operation]:
    """Read a history written by :func:`write_jsonl` (or by hand)."""
    ops = []
    for n, line in enumerate(_text(source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {n}: not JSON ({e.msg}): {line[:80]!r}") from None
        if not isinstance(row, dict):
            raise ValueError(f"line {n}: expected a JSON object, got {line[:80]!r}")
        missing = [f for f in FIELDS if f not in row and f not in ("value", "output")]
        extra = sorted(set(row) - set(FIELDS))
        if missing or extra:
            raise ValueError(f"line {n}: " + (f"missing {', '.join(missing)}" if missing else
                                             f"unknown field(s) {', '.join(extra)}"))
        row = {f: _hashable(row.get(f)) for f in FIELDS}
        if not isinstance(row["call"], int | float) or not isinstance(row["ret"], int | float | None):
            raise ValueError(f"line {n}: call and ret must be numbers (ret may be null)")
        if not isinstance(row["client_id"], int) or isinstance(row["client_id"], bool):
            raise ValueError(f"line {n}: client_id must be an integer, got {row['client_id']!r}")
        ops.append(Operation(**row))
    return ops


def _plain(x: Any) -> Any:
    """EDN values as plain Python: keywords to their names, vectors to tuples."""
    import edn_format

    if isinstance(x, edn_format.Keyword):
        return x.name
    if isinstance(x, Sequence) and not isinstance(x, str):
        return tuple(_plain(v) for v in x)
    return x


def _edn_events(text: str) -> list[dict[str, Any]]:
    import edn_format

    try:
        forms = edn_format.loads_all(text)
    except Exception as e:  # edn_format raises its own and ply's errors
        raise ValueError(f"not an EDN history: {e}") from None
    if len(forms) == 1 and isinstance(forms[0], Sequence) and not isinstance(forms[0], str):
        forms = list(forms[0])                    # one vector of events
    events = []
    for n, form in enumerate(forms, start=1):
        if not isinstance(form, Mapping):
            raise ValueError(f"event {n}: expected a map like {{:process 0, :type :invoke, ...}}, "
                             f"got {form!r}")
        event = {_plain(k): v for k, v in form.items()}
        for need in ("process", "type", "f"):
            if need not in event:
                raise ValueError(f"event {n}: no :{need} in {form!r}")
        events.append(event)
    return events


def read_edn(source: Source, default_key: Hashable = "x", independent: bool = False) -> list[Operation]:
    """Read a Jepsen EDN history (see the module docstring for the rules)."""
    events = _edn_events(_text(source))
    if independent:
        events = [_split_key(n, e) for n, e in enumerate(events, start=1)]
    timed = all(isinstance(e.get("time"), int | float) for e in events)
    pending: dict[Any, tuple[dict[str, Any], float]] = {}
    ops: list[tuple[float, Operation | None]] = []
    slot: dict[Any, int] = {}
    for n, e in enumerate(events):
        t = float(e["time"]) if timed else float(n)
        process, what = _plain(e["process"]), _plain(e["type"])
        if what == "invoke":
            if process in pending:
                raise ValueError(f"event {n + 1}: process {process} invokes again before its "
                                 f":{_plain(pending[process][0]['f'])} completed")
            pending[process] = (e, t)
            slot[process] = len(ops)
            ops.append((t, None))
            continue
        if what not in ("ok", "fail", "info"):
            raise ValueError(f"event {n + 1}: unknown :type :{what} (expected invoke, ok, fail or info)")
        if process not in pending:
            if what == "info":
                continue                     # Jepsen's nemesis and other un-invoked notes
            raise ValueError(f"event {n + 1}: :{what} for process {process} with no :invoke before it")
        inv, call = pending.pop(process)
        if what == "fail":
            ops[slot[process]] = (call, None)  # it did not happen: left out
            continue
        ops[slot[process]] = (call, _operation(inv, e if what == "ok" else None, call, t, default_key))
    for process, (inv, call) in pending.items():      # never completed: indeterminate
        ops[slot[process]] = (call, _operation(inv, None, call, None, default_key))
    return [op for _, op in ops if op is not None]


def _split_key(n: int, event: dict[str, Any]) -> dict[str, Any]:
    """A jepsen.independent event: ``:value [key value]`` becomes ``:key``, ``:value``."""
    if _plain(event["type"]) == "info" and not isinstance(event.get("value"), Sequence):
        return event                                  # nemesis notes carry no pair
    pair = _plain(event.get("value"))
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise ValueError(f"event {n}: independent history, but :value is not a [key value] pair: {pair!r}")
    return {**event, "key": pair[0], "value": pair[1]}


def _operation(inv: dict[str, Any], done: dict[str, Any] | None, call: float, ret: float | None,
               default_key: Hashable) -> Operation:
    """One operation from its :invoke and its :ok (``done``; None if indeterminate)."""
    kind, process = _plain(inv["f"]), _plain(inv["process"])
    output = None
    if done is not None and kind in READS:
        output = _plain(done.get("value"))
    elif done is not None and kind == "cas":
        output = True
    key = _plain(inv["key"]) if "key" in inv else default_key
    value = None if kind in READS else _plain(inv.get("value"))
    if not isinstance(process, int):
        raise ValueError(f"expected an integer :process for a client operation, got {process!r}")
    return Operation(process, kind, key, value, output, call, ret if done is not None else None)


def read_history(path: str | os.PathLike, fmt: str | None = None,
                 default_key: Hashable = "x", independent: bool = False) -> list[Operation]:
    """Read a history file as ``fmt`` ("edn" or "jsonl"); by default ``.edn``
    files as Jepsen EDN and anything else as JSON lines."""
    fmt = fmt or ("edn" if str(path).endswith(".edn") else "jsonl")
    if fmt == "edn":
        return read_edn(path, default_key, independent)
    if fmt == "jsonl":
        return read_jsonl(path)
    raise ValueError(f"unknown history format {fmt!r} (expected edn or jsonl)")
