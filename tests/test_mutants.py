"""`raftkit mutants`: the mutator, grading mutants, and the command line.

The mutator must make exactly the mutants its docstring promises, only
inside solution regions; a mutant with a classic bug must be killed by the
scenario that checks that rule; a mutant that hangs must be killed by the
time limit instead of hanging the tool; the command must print its table
and refuse bad arguments with a clear message.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from raftkit.cli import main as raftkit_main
from raftkit.grading.mutants import EQUIVALENT, Mutant, equivalent_reason, mutants_of, mutate_source, run_mutants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLUTIONS = os.path.join(ROOT, "solutions")

SNIPPET = textwrap.dedent('''\
    class N:
        def f(self, a):
            """Not mutated: a docstring."""
            ### BEGIN SOLUTION
            if a > 1 and self.ok:
                self.persist()
                self.election_reset_event = self.clock.now()
            self.emit("x", detail=f"{a + 1}")
            return min(a, True)
            ### END SOLUTION

        def g(self, a):
            return a > 1
    ''')


def test_the_mutator_makes_the_promised_mutants_inside_solution_regions_only():
    """Each operator once per place it applies; nothing outside BEGIN/END,
    nothing in emit() (the pictures' trace), no docstring dropped."""
    got = {(m.operator, m.after) for m in mutate_source(SNIPPET, exercise=9, cell=4)}
    assert got == {
        ("flip comparison", "if a >= 1 and self.ok:"),
        ("flip comparison", "if a <= 1 and self.ok:"),
        ("off by one", "if a > 2 and self.ok:"),
        ("off by one", "if a > 0 and self.ok:"),
        ("swap and/or", "if a > 1 or self.ok:"),
        ("drop a condition", "if self.ok:"),
        ("drop a condition", "if a > 1:"),
        ("drop persist()", "pass"),
        ("drop timer reset", "pass"),
        ("swap min/max", "return max(a, True)"),
        ("swap True/False", "return min(a, False)"),
        ("drop statement", "pass"),
    }
    mutants = mutate_source(SNIPPET, exercise=9, cell=4)
    assert all(m.method == "f" and m.exercise == 9 and m.cell == 4 for m in mutants)
    persist = next(m for m in mutants if m.operator == "drop persist()")
    assert (persist.line, persist.offset, persist.before) == (6, 4, "self.persist()")
    assert "        pass\n" in persist.source and "self.persist()" not in persist.source
    assert persist.key == "9:f+4: self.persist() -> pass"
    assert mutate_source("x = 1\n") == []   # no solution region, no mutant


def test_every_solution_has_mutants_with_unique_keys():
    for exercise in range(1, 8):
        _, mutants = mutants_of(exercise, SOLUTIONS)
        assert mutants, f"exercise {exercise}: no mutants"
        keys = [m.key for m in mutants]
        assert len(keys) == len(set(keys)), f"exercise {exercise}: two mutants share a key"


def test_each_equivalent_entry_names_exactly_one_mutant():
    """A stale entry (the solution changed) must not silently excuse another mutant."""
    mutants = [m for exercise in range(1, 8) for m in mutants_of(exercise, SOLUTIONS)[1]]
    for where, piece, why in EQUIVALENT:
        hits = [m for m in mutants if f"{m.exercise}:{m.method}+{m.offset}" == where and piece in m.after]
        assert len(hits) == 1, f"{where} {piece!r} matches {len(hits)} mutants"
        assert equivalent_reason(hits[0]) == why


def _mutant(exercise, old, new):
    cells, _ = mutants_of(exercise, SOLUTIONS)
    number, source = next((n, s) for n, s in cells if source_has(s, old))
    return cells, Mutant(exercise, number, 0, "hand-made", 0, "hand-made", old, new, source.replace(old, new, 1))


def source_has(source, text):
    return source.count(text) == 1


def test_a_forgotten_persist_is_killed_by_the_scenario_for_that_rule():
    """RequestVote without persist(): the vote is lost in a crash; the
    fixed seed of "votes and terms are saved before answering" catches it."""
    cells, bug = _mutant(2, "            self.persist()  # on stable storage before we answer\n", "")
    (result,) = run_mutants(2, cells, [bug], jobs=1)
    assert result["status"] == "killed", result
    assert result["killed_by"] == "votes and terms are saved before answering"
    assert "persist()" in result["message"]


def test_a_mutant_that_hangs_is_killed_by_the_time_limit():
    """An endless loop in a handler called by hand (no node thread, so no
    watchdog) must cost the mutant, not the tool."""
    first = "        if prev > self.last_log_index():\n            return self.last_log_index() + 1, 0\n"
    cells, bug = _mutant(3, first, "        while True:\n            pass\n")
    (result,) = run_mutants(3, cells, [bug], jobs=1, timeout=2.0)
    assert (result["status"], result["error"]) == ("killed", "timeout")
    assert result["killed_by"] == "consistency check"


@pytest.mark.slow  # grades the whole battery once on the solution (the baseline)
def test_cli_on_one_exercise_with_a_budget_prints_the_table(tmp_path, capsys):
    out = tmp_path / "mutants.json"
    status = raftkit_main(["mutants", "--exercise", "5", "--budget", "3", "--solutions", SOLUTIONS,
                           "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "a sample of 3 of 6" in text
    header = next(line for line in text.splitlines() if line.split()[:2] == ["exercise", "mutants"])
    row = text.splitlines()[text.splitlines().index(header) + 1].split()
    assert row[:2] == ["5", "3"] and row[-1].endswith("%")
    doc = json.loads(out.read_text())
    (ex,) = doc["exercises"]
    assert ex["mutants"] == 3 and ex["killed"] + ex["survived"] + ex["equivalent"] == 3
    assert {m["status"] for m in ex["mutants_detail"]} <= {"killed", "survived", "equivalent"}


@pytest.mark.parametrize("args, phrase", [
    (["--exercise", "9"], "there is no exercise 9"),
    (["--budget", "0"], "--budget must be >= 1"),
    (["--solutions", "/nonexistent-folder"], "no such folder"),
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--timeout", "0"], "--timeout must be > 0"),
    (["--json", "/nonexistent-folder/out.json"], "its folder does not exist"),
])
def test_cli_refuses_bad_arguments_clearly(args, phrase, capsys):
    assert raftkit_main(["mutants", *args]) == 2
    assert phrase in capsys.readouterr().err


def test_a_solution_that_fails_its_own_battery_is_reported_not_scored(tmp_path, capsys):
    """A broken reference would make every mutant look killed: the tool
    grades the unmutated solution first and stops with the failing scenario."""
    nb = json.loads(open(os.path.join(SOLUTIONS, "05-persistence.ipynb"), encoding="utf-8").read())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and "### BEGIN SOLUTION" in "".join(c["source"]))
    cell["source"] = "".join(cell["source"]).replace("self.storage.save(state, snapshot)", "pass")
    assert "self.storage.save" not in cell["source"]
    (tmp_path / "05-persistence.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    assert raftkit_main(["mutants", "--exercise", "5", "--solutions", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "the solution of exercise 5 itself fails 'state survives a restart'" in err


def test_list_shows_every_mutant_without_grading(capsys):
    assert raftkit_main(["mutants", "--exercise", "5", "--solutions", SOLUTIONS, "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(mutants_of(5, SOLUTIONS)[1]) == 6
    assert all(line.startswith("exercise 5  cell ") for line in lines)
