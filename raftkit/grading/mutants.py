"""Mutation testing of the battery: ``raftkit mutants``.

    raftkit mutants                          # every exercise, the fixed seeds only
    raftkit mutants --exercise 2 --json out.json
    raftkit mutants --exercise 4 --budget 20 # a deterministic sample of 20 mutants

Theory of operation
-------------------
A scenario checks a rule only if a solution that breaks the rule fails it.
So: take the reference solution of an exercise (the code between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` in ``solutions/``), make many
small wrong versions of it (*mutants*), grade each with the fixed seeds of
every scenario, and count the mutants that fail at least one scenario
(*killed*). A *surviving* mutant is a rule the battery does not check, or a
change that does not change behaviour (an *equivalent* mutant; those are
listed in ``EQUIVALENT`` with the reason). The score of an exercise is
killed / (mutants - equivalent).

The mutator works on the syntax tree of each solution cell and touches only
nodes that lie entirely inside a solution region. Its operators (the classic
ones of Offutt et al., plus three that are Raft's own classic bugs):

* flip a comparison (``<`` to ``<=`` and ``>=``, ``==`` to ``!=``, ``in`` to ``not in``, ...);
* off by one: an integer constant ``k`` becomes ``k + 1`` and ``k - 1``; ``+`` and ``-`` swap;
* ``min``/``max``, ``and``/``or``, ``True``/``False`` swap; a ``not`` is dropped; one
  operand of an ``and``/``or`` is dropped (a forgotten condition);
* drop a statement (it becomes ``pass``); dropping ``self.persist(...)`` and
  ``self.election_reset_event = ...`` are reported as operators of their own.

Statements that only feed the pictures (``self.emit(...)``, ``self.timeout = ...``)
and the text inside them are not mutated: no grade can depend on them.

Each mutant is graded in a forked process (two at a time on two cores): the
cells are executed with :func:`cells.load_cells` and every scenario runs
through :func:`runs.run_scenario`, exactly as ``check()`` and the grader do,
but in-process (these are the instructor's own mutants, not student code).
Scenarios run white-box first, then in the battery's order, and a mutant
stops at its first failure. Unlike the grader with nodes in-process (a
fresh process per run), one process runs all of a mutant's runs: the
mutator never adds module or class state, so one run cannot leak into the
next. A run that exceeds the grader's per-run time
limit is killed and the mutant counts as killed by that timeout (the grader
would score that scenario 0 too).

Why not mutmut or cosmic-ray: both mutate whole source files on disk and
judge a mutant by a test command's exit status. ``mutmut`` 3 rewrites every
function of a file into trampolined variants selected at run time and runs
them under pytest; ``cosmic-ray`` rewrites the module file per mutant and runs
a test command in a subprocess. Neither can be limited to the solution
regions of a notebook cell without writing the cells out as a package and
marking every other line ``# pragma: no mutate``; neither removes a
statement (cosmic-ray's core operators replace operators, numbers, booleans,
break/continue and exceptions, remove decorators and zero loops; mutmut
changes expressions, assignments and call arguments), so neither makes the
forgotten ``persist()`` or timer reset, the bugs students write most; and a
process (pytest, or a fresh interpreter) per mutant costs more than the fork
of an already warm grader. The small mutator here is ~150 lines and uses the
grader's own code path.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait

from . import battery
from .cells import load_cells
from .notebook import SubmissionError, read_cells
from .options import GradeOptions
from .release import BEGIN, END
from .runs import run_scenario

__all__ = ["Mutant", "mutate_source", "solution_lines", "mutants_of", "run_mutants", "EQUIVALENT", "equivalent_reason",
           "main"]

DISPLAY_ONLY_CALLS = {"emit"}          # self.emit(...): the trace the pictures read
DISPLAY_ONLY_ATTRS = {"timeout"}       # self.timeout = ...: the timer the widget draws
WATCHDOG = 2.0                         # wall seconds a node thread may run without yielding

_WAKE = "the receiver ignores the value: commit_ready and trigger_ae are wake-ups (run_applier, run_heartbeats)"
_STEPPED = "become_follower() just made the node a follower, so the next check (state) returns anyway"
_LEADER_TERM = ("a leader stops leading only for a newer term (or a crash, which ends its threads): in the "
                "term it sent the request in, it is still the leader")

#: Surviving mutants that are not bugs, with the reason: (exercise:method+offset,
#: a piece of the mutated line, why). Most are equivalent (no run can tell them
#: apart); those marked "permitted" behave differently but as Figure 2 allows
#: (slower, never wrong).
EQUIVALENT: tuple[tuple[str, str, str], ...] = (
    ('1:run_election_timer+17', 'elapsed > timeout',
     'elapsed and timeout_duration are random floats: they are equal with probability 0'),
    ('1:run_election_timer+20', 'pass', "the loop's next tick returns anyway: start_election moved the term on"),
    ('2:send_request_vote+10', 'pass', _STEPPED),
    ('2:send_request_vote+14', 'votes[-1]', 'votes is a one-element list: votes[-1] is votes[0]'),
    ('2:send_request_vote+15', 'votes[-1]', 'votes is a one-element list: votes[-1] is votes[0]'),
    ('3:append_entries+22', 'index >= self',
     'at our last entry with the same term, deleting it and appending args.entries[k:] puts back the same '
     'entry (same index and term: Log Matching); the log ends the same'),
    ('3:append_entries+26', 'pass',
     'after the truncation every later entry of the request is in the log: none conflicts again'),
    ('3:append_entries+30', 'leader_commit >=',
     'with leader_commit == commit_index, min(leader_commit, last_new) is commit_index again'),
    ('3:append_entries+30', 'last_new >=',
     'with last_new == commit_index, min(leader_commit, last_new) is commit_index again'),
    ('3:append_entries+33', 'try_send(False)', _WAKE),
    ('3:conflict_hint+7', 'index >= 1',
     'term_at(0) is 0 (exercise 3 has no snapshots) and no entry has term 0: the loop stops at 1'),
    ('3:conflict_hint+7', 'index > 0',
     'term_at(0) is 0 (exercise 3 has no snapshots) and no entry has term 0: the loop stops at 1'),
    ('3:conflict_hint+7', 'while self.term_at',
     'term_at(0) is 0 (exercise 3 has no snapshots) and no entry has term 0: the loop stops at 1'),
    ('4:send_append_entries+10', 'pass', _STEPPED),
    ('4:send_append_entries+11', 'if self.current_term != args.term:', _LEADER_TERM),
    ('4:send_append_entries+15', 'match >=',
     'permitted: an equal match sets next_index to match_index + 1, which Figure 2 allows (any next_index '
     'above match_index is correct; only the amount resent changes)'),
    ('4:send_append_entries+21', 'pass',
     'permitted: the retry goes with the next heartbeat (50 ms) instead of at once; Figure 2 says only '
     "'decrement nextIndex and retry'"),
    ('4:send_append_entries+21', 'try_send(False)', _WAKE),
    ('4:backup_index+3', 'conflict_term >= 0',
     "conflict_term 0 means 'log too short': no leader entry has term 0, the search finds nothing and "
     'conflict_index is returned as before'),
    ('4:backup_index+3', 'conflict_term > -1',
     "conflict_term 0 means 'log too short': no leader entry has term 0, the search finds nothing and "
     'conflict_index is returned as before'),
    ('4:backup_index+4', '-1, -1)', 'term_at(0) is 0 (exercise 4 has no snapshots), never a conflict term > 0'),
    ('4:backup_index+7', 'max(0,',
     'every refusal hints conflict_index >= 1 (a log length + 1), and the caller takes max(match_index + '
     '1, ...) anyway'),
    ('4:advance_commit_index+11', 'try_send(False)', _WAKE),
    ('6:snapshot+4', 'index < self',
     'snapshot(last_included_index) again keeps the same log (log[0:]), index and term'),
    ('6:send_install_snapshot+10', 'pass', _STEPPED),
    ('6:send_install_snapshot+11', 'if self.current_term != args.term:', _LEADER_TERM),
    ('6:install_snapshot+4', 'args.term >= self',
     'with args.term == current_term, become_follower(current_term) does what lines 64-65 do anyway (a '
     'leader never gets InstallSnapshot of its own term: one leader per term)'),
    ('6:install_snapshot+15', 'index < self',
     'when index is our last entry, the entries after it are none: both branches empty the log'),
    ('6:install_snapshot+22', 'None, 1, True',
     'command_index is not read in a snapshot message (command_valid is False)'),
    ('6:install_snapshot+22', 'None, -1, True',
     'command_index is not read in a snapshot message (command_valid is False)'),
    ('6:install_snapshot+25', 'try_send(False)', _WAKE),
    ('7:request+4', '+= 2', 'sequence numbers only need to grow: the state machine compares them with <= and =='),
    ('7:request+7', '<= deadline', 'clock.now() and deadline are floats: they are equal with probability 0'),
    ('7:request+12', '- 1) % n', 'visits every server, in the other order'),
    ('7:request+13', 'pass',
     "permitted: a call to an unreachable server already takes simulated time (labrpc's timeout), so the "
     'clerk does not spin; it only retries sooner'),
)


def equivalent_reason(m: Mutant) -> str | None:
    """Why ``m`` is not a bug, if the table says so."""
    where = f"{m.exercise}:{m.method}+{m.offset}"
    return next((why for loc, piece, why in EQUIVALENT if loc == where and piece in m.after), None)


# --------------------------------------------------------------------------
# The mutator
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutant:
    """One small change to one solution cell."""

    exercise: int
    cell: int          # the notebook's cell number (1-based, as the grader counts)
    line: int          # the first changed line, within the cell
    method: str        # the function the change is in
    offset: int        # the changed line's distance from the ``def`` line (stable when cells move)
    operator: str
    before: str        # the changed source, whitespace collapsed
    after: str
    source: str = field(repr=False)  # the whole mutated cell

    @property
    def key(self) -> str:
        return f"{self.exercise}:{self.method}+{self.offset}: {self.before} -> {self.after}"

    @property
    def where(self) -> str:
        return f"cell {self.cell}, line {self.line}, {self.method}()"

    @property
    def diff(self) -> str:
        return f"- {self.before}  + {self.after}"


_FLIPS = {ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt), ast.Gt: (ast.GtE, ast.LtE),
          ast.GtE: (ast.Gt, ast.Lt), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.In: (ast.NotIn,),
          ast.NotIn: (ast.In,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,)}
_SWAP_NAMES = {"min": "max", "max": "min"}
_SIMPLE_STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Break, ast.Continue)


def solution_lines(source: str) -> set[int]:
    """The 1-based line numbers strictly between BEGIN and END markers."""
    lines, inside = set(), False
    for number, line in enumerate(source.split("\n"), 1):
        text = line.strip()
        if text == BEGIN:
            inside = True
        elif text == END:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _display_only(node) -> bool:
    """A node whose only effect is on the pictures (never graded)."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Attribute) and func.attr in DISPLAY_ONLY_CALLS
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Attribute) and t.attr in DISPLAY_ONLY_ATTRS for t in node.targets)
    return False


def _variants(node):
    """(operator, replacement source) for each mutation of ``node``."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in _FLIPS.get(type(op), ()):
                m = copy.deepcopy(node)
                m.ops[i] = new()
                yield "flip comparison", ast.unparse(m)
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield "swap True/False", repr(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield "off by one", repr(node.value + 1)
        yield "off by one", repr(node.value - 1)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        m = copy.deepcopy(node)
        m.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        yield "swap +/-", ast.unparse(m)
    elif isinstance(node, ast.AugAssign) and isinstance(node.op, (ast.Add, ast.Sub)):
        m = copy.deepcopy(node)
        m.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        yield "swap +/-", ast.unparse(m)
    elif isinstance(node, ast.BoolOp):
        m = copy.deepcopy(node)
        m.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield "swap and/or", ast.unparse(m)
        for i in range(len(node.values)):  # a condition forgotten
            rest = node.values[:i] + node.values[i + 1:]
            yield "drop a condition", ast.unparse(rest[0] if len(rest) == 1 else ast.BoolOp(node.op, rest))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield "drop not", ast.unparse(node.operand)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SWAP_NAMES:
        m = copy.deepcopy(node)
        m.func.id = _SWAP_NAMES[node.func.id]
        yield "swap min/max", ast.unparse(m)
    if isinstance(node, _SIMPLE_STATEMENTS) and not _is_docstring(node):
        yield _drop_kind(node), "pass"


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _drop_kind(node) -> str:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        if isinstance(func, ast.Attribute) and func.attr == "persist":
            return "drop persist()"
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "election_reset_event"
                                            for t in node.targets):
        return "drop timer reset"
    return "drop statement"


def _nodes(tree, allowed: set[int]):
    """(node, enclosing function) for every mutable node in the solution lines."""
    def visit(node, func, skip):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node
        skip = skip or _display_only(node) or isinstance(node, ast.JoinedStr)
        inside = (hasattr(node, "lineno") and node.lineno in allowed
                  and all(n in allowed for n in range(node.lineno, node.end_lineno + 1)))
        if inside and not skip:
            yield node, func
        for child in ast.iter_child_nodes(node):
            yield from visit(child, func, skip)
    yield from visit(tree, None, False)


def _replace(lines: list[str], node, text: str) -> tuple[list[str], str, str]:
    """The lines with ``node``'s source replaced by ``text``; the old and new source."""
    first, last = lines[node.lineno - 1], lines[node.end_lineno - 1]
    start = len(first.encode()[:node.col_offset].decode())
    end = len(last.encode()[:node.end_col_offset].decode())
    new_line = first[:start] + text + last[end:]  # a dropped statement's "pass" keeps its indentation
    old = " ".join("\n".join(lines[node.lineno - 1:node.end_lineno]).split())
    out = lines[:node.lineno - 1] + [new_line] + lines[node.end_lineno:]
    return out, old, " ".join(new_line.split())


def mutate_source(source: str, exercise: int = 0, cell: int = 0) -> list[Mutant]:
    """Every mutant of one cell's solution regions, in source order."""
    allowed = solution_lines(source)
    if not allowed:
        return []
    tree = ast.parse(source)
    lines = source.split("\n")
    out, seen = [], set()
    for node, func in _nodes(tree, allowed):
        for operator, text in _variants(node):
            new_lines, old, new = _replace(lines, node, text)
            mutated = "\n".join(new_lines)
            if mutated == source or mutated in seen:
                continue
            try:
                ast.parse(mutated)
            except SyntaxError:
                continue
            seen.add(mutated)
            name, offset = (func.name, node.lineno - func.lineno) if func else ("-", node.lineno)
            out.append(Mutant(exercise, cell, node.lineno, name, offset, operator, old, new, mutated))
    out.sort(key=lambda m: (m.cell, m.line))
    return out


def solution_path(solutions: str, exercise: int) -> str:
    return os.path.join(solutions, battery.EXERCISES[exercise].notebook + ".ipynb")


def mutants_of(exercise: int, solutions: str = "solutions") -> tuple[list, list[Mutant]]:
    """The cells the grader would run for the solution of ``exercise``, and their mutants."""
    _, cells = read_cells(solution_path(solutions, exercise))
    mutants = []
    for number, source in cells:
        mutants.extend(mutate_source(source, exercise, number))
    return cells, mutants


# --------------------------------------------------------------------------
# Grading mutants
# --------------------------------------------------------------------------

def scenario_order(ex) -> list:
    """White-box scenarios first (they are fast and name the rule), then the rest, in battery order."""
    return sorted(ex.scenarios, key=lambda s: not s.doc.lower().startswith("white-box"))


def _child(ex, cells, conn, memory_mb):
    """In the forked process: load the (mutated) cells, run the fixed seeds, report on ``conn``."""
    with contextlib.suppress(ValueError, OSError):
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    loaded = load_cells(cells, ex)
    if not loaded["ok"]:
        conn.send(("invalid", loaded["error"]))
        return
    impl = ex.make_impl(*loaded["classes"])
    for sc in scenario_order(ex):
        for seed in sc.seeds:
            conn.send(("start", sc.name, seed))
            run = run_scenario(sc, impl, seed, watchdog=WATCHDOG)
            if not run["ok"]:
                message = (run["message"] or run["error_type"]).strip().splitlines()
                conn.send(("killed", sc.name, seed, run["error_type"], message[0][:200] if message else ""))
                return
    conn.send(("survived",))


def _child_main(ex_number, cells, conn, memory_mb):
    try:
        _child(battery.EXERCISES[ex_number], cells, conn, memory_mb)
    except BaseException as e:  # whatever happens, the parent hears of it
        with contextlib.suppress(Exception):
            conn.send(("killed", "(loading)", None, type(e).__name__, str(e)[:200]))
    finally:
        conn.close()
        os._exit(0)


@dataclass
class _Job:
    index: int
    process: object
    conn: object
    started: float
    run_started: float
    scenario: str = ""
    seed: int | None = None


def run_mutants(exercise: int, cells, mutants, *, jobs: int = 2, timeout: float | None = None,
                memory_mb: int = 2048, progress=None) -> list[dict]:
    """Grade every mutant (in forked processes, ``jobs`` at a time); one result dict per mutant."""
    timeout = timeout or GradeOptions().scenario_timeout
    ctx = multiprocessing.get_context("fork")
    pending = list(enumerate(mutants))
    results: list[dict | None] = [None] * len(mutants)
    active: dict = {}

    def start(index, mutant):
        mutated = [(n, mutant.source if n == mutant.cell else s) for n, s in cells]
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child_main, args=(exercise, mutated, child, memory_mb), daemon=True)
        p.start()
        child.close()
        now = time.monotonic()
        active[parent] = _Job(index, p, parent, now, now)

    def finish(job, status, **extra):
        job.process.kill()
        job.process.join(5)
        job.conn.close()
        del active[job.conn]
        m = mutants[job.index]
        equivalent = equivalent_reason(m)
        if status == "survived" and equivalent:
            status = "equivalent"
        results[job.index] = dict({k: v for k, v in asdict(m).items() if k != "source"}, key=m.key, status=status,
                                  equivalent=equivalent,
                                  seconds=round(time.monotonic() - job.started, 2), **extra)
        if progress:
            progress(results[job.index])

    while pending or active:
        while pending and len(active) < jobs:
            start(*pending.pop(0))
        for conn in wait(list(active), timeout=0.2):
            job = active[conn]
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                finish(job, "killed", killed_by="(the process died)", seed=job.seed, error="crash", message="")
                continue
            if msg[0] == "start":
                job.scenario, job.seed, job.run_started = msg[1], msg[2], time.monotonic()
            elif msg[0] == "killed":
                finish(job, "killed", killed_by=msg[1], seed=msg[2], error=msg[3], message=msg[4])
            elif msg[0] == "invalid":
                finish(job, "invalid", killed_by="", seed=None, error="", message=msg[1][:200])
            else:
                finish(job, "survived", killed_by="", seed=None, error="", message="")
        now = time.monotonic()
        for job in [j for j in active.values() if now - j.run_started > timeout]:
            finish(job, "killed", killed_by=job.scenario, seed=job.seed, error="timeout",
                   message=f"the run took more than {timeout:g} s")
    return results


def baseline(exercise: int, cells, timeout: float | None = None) -> dict:
    """The unmutated solution through the same path: it must survive, or the battery is wrong."""
    return run_mutants(exercise, cells, [Mutant(exercise, 0, 0, "-", 0, "none", "", "", "")],
                       jobs=1, timeout=timeout)[0]


def summary(exercise: int, results: list[dict]) -> dict:
    counted = [r for r in results if r["status"] != "invalid"]
    killed = sum(r["status"] == "killed" for r in counted)
    equivalent = sum(r["status"] == "equivalent" for r in counted)
    survived = [r for r in counted if r["status"] == "survived"]
    live = len(counted) - equivalent
    return {"exercise": exercise, "mutants": len(counted), "killed": killed, "survived": len(survived),
            "equivalent": equivalent, "score": round(killed / live, 4) if live else 1.0,
            "timeouts": sum(r.get("error") == "timeout" for r in counted)}


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raftkit mutants",
        description="Mutation testing of the grading battery: mutate each exercise's reference solution, "
                    "grade every mutant with the fixed seeds, report the killed and the surviving mutants.")
    p.add_argument("--exercise", type=int, action="append", dest="exercises", metavar="N",
                   help="only this exercise (repeatable; default: all)")
    p.add_argument("--solutions", default="solutions", metavar="DIR",
                   help="folder of the solution notebooks (default: solutions)")
    p.add_argument("--json", metavar="FILE", help="write every mutant and its fate as JSON")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="mutants graded at once")
    p.add_argument("--budget", type=int, metavar="K",
                   help="grade at most K mutants per exercise, a sample drawn with --seed")
    p.add_argument("--seed", type=int, default=0, help="seed of the --budget sample (default 0)")
    p.add_argument("--timeout", type=float, default=GradeOptions().scenario_timeout,
                   help="wall seconds per (scenario, seed) run, as the grader (default %(default)s)")
    p.add_argument("--list", action="store_true", help="list the mutants and stop (nothing is graded)")
    return p


def sample(mutants: list[Mutant], budget: int | None, seed: int) -> list[Mutant]:
    if budget is None or budget >= len(mutants):
        return mutants
    chosen = sorted(random.Random(seed).sample(range(len(mutants)), budget))
    return [mutants[i] for i in chosen]


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    numbers = args.exercises or sorted(battery.EXERCISES)
    bad = [n for n in numbers if n not in battery.EXERCISES]
    if bad:
        print(f"raftkit mutants: there is no exercise {bad[0]}; exercises are {sorted(battery.EXERCISES)}",
              file=sys.stderr)
        return 2
    for wrong, message in ((args.jobs < 1, "--jobs must be >= 1"),
                           (args.budget is not None and args.budget < 1, "--budget must be >= 1"),
                           (not args.timeout > 0, "--timeout must be > 0")):
        if wrong:
            print(f"raftkit mutants: {message}", file=sys.stderr)
            return 2
    if not os.path.isdir(args.solutions):
        print(f"raftkit mutants: {args.solutions}: no such folder (pass --solutions DIR)", file=sys.stderr)
        return 2
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        print(f"raftkit mutants: cannot write {args.json}: its folder does not exist", file=sys.stderr)
        return 2
    doc = {"command": "raftkit mutants " + " ".join(argv if argv is not None else sys.argv[1:]),
           "seed": args.seed, "budget": args.budget, "exercises": []}
    t0 = time.monotonic()
    for number in numbers:
        try:
            cells, mutants = mutants_of(number, args.solutions)
        except SubmissionError as e:
            print(f"raftkit mutants: {e}", file=sys.stderr)
            return 2
        total = len(mutants)
        mutants = sample(mutants, args.budget, args.seed)
        if args.list:
            for m in mutants:
                print(f"exercise {number}  {m.where:<45} {m.operator:<16} {m.diff}")
            continue
        base = baseline(number, cells, args.timeout)
        if base["status"] != "survived":
            print(f"raftkit mutants: the solution of exercise {number} itself fails "
                  f"{base['killed_by']!r} (seed {base['seed']}): {base['message']}", file=sys.stderr)
            return 1
        started = time.monotonic()
        results = run_mutants(number, cells, mutants, jobs=args.jobs, timeout=args.timeout)
        s = summary(number, results)
        s.update(generated=total, seconds=round(time.monotonic() - started, 1))
        doc["exercises"].append(dict(s, mutants_detail=results))
        print_exercise(s, results)
    if args.list:
        return 0
    print_table(doc["exercises"])
    print(f"({time.monotonic() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, default=str)
    return 0


def print_exercise(s: dict, results: list[dict]) -> None:
    ex = battery.EXERCISES[s["exercise"]]
    sampled = f" (a sample of {s['mutants']} of {s['generated']})" if s["mutants"] < s["generated"] else ""
    print(f"Exercise {ex.number}: {ex.title}: {s['killed']}/{s['mutants'] - s['equivalent']} killed"
          f"{sampled}, {s['equivalent']} equivalent, {s['seconds']} s")
    for r in results:
        if r["status"] == "survived":
            print(f"  SURVIVED  cell {r['cell']}, line {r['line']}, {r['method']}() [{r['operator']}]")
            print(f"            - {r['before']}  + {r['after']}")


def print_table(rows: list[dict]) -> None:
    print()
    print(f"{'exercise':>8} {'mutants':>8} {'killed':>7} {'survived':>9} {'equivalent':>11} {'score':>7}")
    for s in rows:
        print(f"{s['exercise']:>8} {s['mutants']:>8} {s['killed']:>7} {s['survived']:>9} {s['equivalent']:>11} "
              f"{100 * s['score']:>6.1f}%")
