"""What `raftkit grade` grades, and whose it is: the layouts courses have,
duplicates and strays skipped with a note, missing exercises listed with 0,
results saved as each notebook finishes and `--resume` going on from them.

The grading itself (worker processes) is replaced here by a stand-in that
returns a result per notebook, so these tests are about the command's
bookkeeping; tests/test_grading.py grades real notebooks.
"""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from raftkit.grading import EXERCISES, GradeOptions
from raftkit.grading import parent as parent_mod
from raftkit.grading.cli import grade_main
from raftkit.grading.submissions import find_submissions, missing_results

STEMS = {n: ex.notebook for n, ex in EXERCISES.items()}


def notebook(path, exercise: int | None = None) -> str:
    """An exercise notebook (metadata names it) or, with None, an unrelated one."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    if exercise is not None:
        nb.metadata["raftkit"] = {"exercise": exercise}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(nb, path)
    return str(path)


def students(found) -> dict:
    return {(s.student, s.exercise) for s in found.submissions}


def test_nbgrader_layout(tmp_path):
    """submitted/<student>/<assignment>/<notebook>: the student is the folder after submitted/."""
    for who in ("alice", "bob"):
        notebook(tmp_path / "submitted" / who / "raft1" / f"{STEMS[2]}.ipynb", 2)
    found = find_submissions([str(tmp_path)])
    assert students(found) == {("alice", 2), ("bob", 2)}
    assert find_submissions([str(tmp_path / "submitted")]).submissions == found.submissions


def test_a_work_folder_is_not_a_student(tmp_path):
    """A `work` folder inside each student's used to make the whole class one student named "work"."""
    for who in ("alice", "bob"):
        notebook(tmp_path / who / "work" / f"{STEMS[3]}.ipynb", 3)
    assert students(find_submissions([str(tmp_path)])) == {("alice", 3), ("bob", 3)}
    files = [str(tmp_path / who / "work" / f"{STEMS[3]}.ipynb") for who in ("alice", "bob")]
    assert students(find_submissions(files)) == {("alice", 3), ("bob", 3)}  # as a shell glob names them


def test_flat_layout_and_one_students_folder(tmp_path):
    notebook(tmp_path / "carol" / f"{STEMS[1]}.ipynb", 1)
    notebook(tmp_path / "carol" / f"{STEMS[4]}.ipynb", 4)
    assert students(find_submissions([str(tmp_path)])) == {("carol", 1), ("carol", 4)}
    assert students(find_submissions([str(tmp_path / "carol")])) == {("carol", 1), ("carol", 4)}
    one = str(tmp_path / "carol" / f"{STEMS[4]}.ipynb")
    assert students(find_submissions([one])) == {("carol", 4)}


def test_duplicates_strays_and_checkpoints_are_skipped_with_a_note(tmp_path):
    notebook(tmp_path / "dan" / f"{STEMS[2]}.ipynb", 2)
    notebook(tmp_path / "dan" / f"{STEMS[2]}-Copy1.ipynb", 2)
    notebook(tmp_path / "dan" / "scratch.ipynb")
    notebook(tmp_path / "dan" / ".ipynb_checkpoints" / f"{STEMS[2]}-checkpoint.ipynb", 2)
    found = find_submissions([str(tmp_path)])
    assert students(found) == {("dan", 2)}
    why = {os.path.basename(p): w for p, w in found.skipped}
    assert set(why) == {f"{STEMS[2]}-Copy1.ipynb", "scratch.ipynb"}
    assert "duplicate" in why[f"{STEMS[2]}-Copy1.ipynb"] and "--exercise" in why["scratch.ipynb"]
    forced = find_submissions([str(tmp_path / "dan" / "scratch.ipynb")], forced_exercise=5)
    assert students(forced) == {("dan", 5)}


def test_a_file_that_is_not_json_is_still_graded(tmp_path):
    """Its student must get the grader's message and a 0, not silence."""
    path = tmp_path / "eve" / f"{STEMS[2]}.ipynb"
    path.parent.mkdir()
    path.write_text('{"nbformat": "3", "cells": ')
    assert students(find_submissions([str(tmp_path)])) == {("eve", 2)}


def test_missing_exercises_count_zero():
    found_rows = [("alice", 1), ("alice", 2), ("bob", 1)]
    subs = [type("S", (), {"student": s, "exercise": e})() for s, e in found_rows]
    rows = missing_results(subs)
    assert [(r["student"], r["exercise"], r["score"], r["max"]) for r in rows] == [
        ("bob", 2, 0, EXERCISES[2].max_points)]
    assert "no notebook for exercise 2" in rows[0]["error"]


# --------------------------------------------------------------------------
# The command: saved as it goes, resumed, missing listed
# --------------------------------------------------------------------------

class Interrupted(KeyboardInterrupt):
    pass


def fake_grading(calls: list, stop_after: int | None = None):
    """Stands in for the worker processes: full marks for each notebook,
    reported through on_result as the real grader does; Ctrl-C after
    ``stop_after`` notebooks."""
    def grade_notebooks(paths, options, jobs=1, progress=False, on_result=None):
        results = []
        for k, path in enumerate(paths):
            if stop_after is not None and k == stop_after:
                raise Interrupted()
            calls.append(path)
            meta = json.load(open(path))["metadata"]["raftkit"]
            ex = EXERCISES[meta["exercise"]]
            r = {"notebook": path, "student": "?", "exercise": ex.number, "title": ex.title,
                 "score": ex.max_points, "max": ex.max_points, "error": None, "grader_error": None,
                 "warnings": [], "scenarios": []}
            results.append(r)
            if on_result:
                on_result(k, r)
        return results
    return grade_notebooks


@pytest.fixture
def klass(tmp_path):
    notebook(tmp_path / "class" / "alice" / f"{STEMS[1]}.ipynb", 1)
    notebook(tmp_path / "class" / "alice" / f"{STEMS[2]}.ipynb", 2)
    notebook(tmp_path / "class" / "bob" / f"{STEMS[1]}.ipynb", 1)
    return tmp_path


def run(argv, monkeypatch, calls, stop_after=None):
    monkeypatch.setattr(parent_mod, "grade_notebooks", fake_grading(calls, stop_after))
    return grade_main([*argv, "--no-progress", "--random-seeds", "1"])


def test_interrupted_run_keeps_its_results_and_resume_goes_on(klass, monkeypatch, capsys):
    out = str(klass / "grades.json")
    calls: list = []
    assert run([str(klass / "class"), "--json", out], monkeypatch, calls, stop_after=2) == 130
    assert "kept in" in capsys.readouterr().err
    saved = json.load(open(out))
    assert saved["complete"] is False and len(saved["submissions"]) == 2
    seeds = saved["random_seeds"]

    calls.clear()
    assert run([str(klass / "class"), "--json", out, "--resume"], monkeypatch, calls) == 0
    assert [os.path.basename(os.path.dirname(p)) for p in calls] == ["bob"]  # only what was left
    final = json.load(open(out))
    assert final["complete"] is True and final["random_seeds"] == seeds  # the same seeds as the run resumed
    rows = {(r["student"], r["exercise"]): r["score"] for r in final["submissions"]}
    assert rows == {("alice", 1): EXERCISES[1].max_points, ("alice", 2): EXERCISES[2].max_points,
                    ("bob", 1): EXERCISES[1].max_points, ("bob", 2): 0}  # bob handed in no exercise 2


def test_resume_needs_a_json_file_and_refuses_a_foreign_one(klass, monkeypatch, capsys):
    calls: list = []
    assert run([str(klass / "class"), "--resume"], monkeypatch, calls) == 2
    assert "--resume needs --json" in capsys.readouterr().err
    other = klass / "other.json"
    other.write_text('{"not": "ours"}')
    assert run([str(klass / "class"), "--json", str(other), "--resume"], monkeypatch, calls) == 2
    assert "not a results file" in capsys.readouterr().err
    assert calls == [] and other.read_text() == '{"not": "ours"}'  # nothing graded, nothing overwritten


def test_skipped_notebooks_are_named(klass, monkeypatch, capsys):
    notebook(klass / "class" / "bob" / f"{STEMS[1]}-Copy1.ipynb", 1)
    calls: list = []
    assert run([str(klass / "class")], monkeypatch, calls) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "-Copy1.ipynb" in err
    assert len(calls) == 3


def test_gradescope_results_one_test_per_scenario():
    from raftkit.grading.gradescope import gradescope_results
    ok = {"name": "vote counting", "points": 15, "max": 15, "passed": True, "message": "", "replay": ""}
    bad = {"name": "re-election", "points": 0, "max": 10, "passed": False, "message": "two leaders in term 3",
           "replay": "replay(MyNode, 'reelection', seed=7)"}
    results = [{"notebook": "/x/02.ipynb", "exercise": 2, "title": "RequestVote", "score": 15, "max": 25,
                "error": None, "grader_error": None, "scenarios": [ok, bad]},
               {"notebook": None, "exercise": 3, "title": "AppendEntries", "score": 0, "max": 40,
                "error": "no notebook for exercise 3 was handed in", "grader_error": None, "scenarios": []}]
    doc = gradescope_results(results)
    assert [(t["name"], t["score"], t["max_score"], t["status"]) for t in doc["tests"]] == [
        ("exercise 2: RequestVote / vote counting", 15, 15, "passed"),
        ("exercise 2: RequestVote / re-election", 0, 10, "failed"),
        ("exercise 3: AppendEntries", 0, 40, "failed")]
    assert "two leaders" in doc["tests"][1]["output"] and "replay(" in doc["tests"][1]["output"]
    assert doc["score"] == 15 and "handed in" in doc["tests"][2]["output"]


def test_feedback_page_escapes_student_text_and_survives_bad_events(tmp_path):
    """Whatever a student's code put in a message or an event cannot inject
    markup into the page or break it; student names cannot leave the folder."""
    from raftkit.grading.feedback_page import write_feedback_pages
    events = [[0.1, "state", 0, None, "candidate"], [0.2, "send", 0, 1, "<b>RequestVote</b>"],
              [0.3, "deliver", 1, 0, "RequestVote"]]
    bad = {"name": "vote counting", "points": 0, "max": 15, "passed": False, "seed": 4,
           "message": "<script>alert(1)</script>", "where": "cell 3, line 7", "replay": "replay(2, 'x', seed=4)",
           "events": events}
    weird = dict(bad, name="re-election", events=[["x", 1, 2]])
    result = {"notebook": "/c/02.ipynb", "student": "../../evil", "exercise": 2, "title": "RequestVote",
              "score": 0, "max": 25, "error": None, "grader_error": None, "warnings": [], "scenarios": [bad, weird]}
    [page] = write_feedback_pages([result], str(tmp_path / "out"))
    assert os.path.dirname(page) == str(tmp_path / "out")
    text = open(page).read()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert text.count("<svg") == 1 and "no diagram" in text and "seed 4" in text


def _wrong_values(doc, path=()):
    """Every (path, value) that puts a wrong kind of value somewhere in ``doc``."""
    for value in (None, "3", 3, -1, 2.5, [], {}, [None], True):
        yield path, value
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, child in children:
        yield from _wrong_values(child, (*path, key))


def _with(doc, path, value):
    doc = json.loads(json.dumps(doc))
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def test_any_malformed_notebook_is_a_clear_submission_error(tmp_path):
    """Whatever wrong value sits anywhere in a notebook's JSON (the format as a
    string, cells as a number, a source of None, ...), reading it either works
    or raises SubmissionError with a message for the student: never another
    exception, which would be a grader crash."""
    from raftkit.grading.notebook import SubmissionError, read_cells, which_exercise
    base = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"raftkit": {"exercise": 2}},
            "cells": [{"cell_type": "code", "metadata": {"tags": ["x"]}, "source": ["a = 1\n", "b = 2"],
                       "outputs": [], "execution_count": None},
                      {"cell_type": "markdown", "metadata": {}, "source": "text"}]}
    path = tmp_path / "02-request-vote.ipynb"
    tried = 0
    for where, value in _wrong_values(base):
        path.write_text(json.dumps(_with(base, where, value)))
        tried += 1
        try:
            nb, _ = read_cells(str(path))
            assert which_exercise(str(path), nb, None) in (2, 3)  # the metadata's (3 is one), else the name's
        except SubmissionError as e:
            assert "02-request-vote.ipynb" in str(e) and "Traceback" not in str(e), (where, value, e)
    assert tried > 100
    for raw in (b"", b"\xff\xfe", b"{", b'{"nbformat": "3", "worksheets": []}', b"[]", b"null"):
        path.write_bytes(raw)
        with pytest.raises(SubmissionError):
            read_cells(str(path))


def test_workers_running_at_once_get_different_slots(monkeypatch, tmp_path):
    """-j 2: the two notebooks graded at once never share a slot (each
    worker's clocks get a core of their own from it)."""
    import threading
    running, seen, mu = set(), [], threading.Lock()
    both = threading.Barrier(2, timeout=10)

    def fake(path, options, slot=None):
        with mu:
            assert slot not in running
            running.add(slot)
            seen.append(slot)
        if len(seen) <= 2:
            both.wait()  # the first two really overlap
        with mu:
            running.discard(slot)
        return {"notebook": path, "score": 0, "max": 0, "scenarios": []}
    monkeypatch.setattr(parent_mod, "grade_notebook", fake)
    paths = [str(tmp_path / f"{k}.ipynb") for k in range(6)]
    results = parent_mod.grade_notebooks(paths, GradeOptions(), jobs=2)
    assert [r["notebook"] for r in results] == paths
    assert sorted(set(seen)) == [0, 1] and len(seen) == 6
