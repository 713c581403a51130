"""The graded exercises and the autograder (``raftkit grade``, ``raftkit release``).

What must hold:

* every solution notebook gets full marks, every released exercise gets 0
  (nbgrader's ``validate`` / ``validate --invert``), and ``exercises/`` is
  byte for byte what ``raftkit release solutions/ exercises/`` writes;
* a classic bug, planted in a copy of a solution notebook, costs points on
  the scenario that is about that bug (at least two bugs per exercise);
* a deadlocking, an infinitely looping and a result-forging submission get
  0 on the scenarios they break, with the reason and where, and never hang
  the grader; a malformed notebook, a missing class or a wrong signature
  give a clear message and 0, and grading still exits with status 0;
* ``check()`` and ``replay()`` work in-process, as a notebook uses them.

The notebooks are graded in a few batches (each notebook in its own worker
process, several at once), which keeps this file at about a minute on two
CPUs. The batches are module-scoped fixtures; the slow ones carry a
``timeout`` mark.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

import raftkit
from raftkit.grading import EXERCISES, GradeOptions, check, grade_notebooks, replay
from raftkit.grading.cli import grade_main, release_main
from raftkit.grading.release import ReleaseError, release, strip_solutions
from tests import broken
from tests import isolation_nodes as hostile

pytestmark = pytest.mark.slow  # grades notebooks in worker processes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLUTIONS = os.path.join(ROOT, "solutions")
EXERCISE_DIR = os.path.join(ROOT, "exercises")
JOBS = max(2, os.cpu_count() or 2)
STEMS = {n: ex.notebook for n, ex in EXERCISES.items()}


def solution_path(exercise: int) -> str:
    return os.path.join(SOLUTIONS, STEMS[exercise] + ".ipynb")


# --------------------------------------------------------------------------
# Making submissions from the solution notebooks
# --------------------------------------------------------------------------

def replace_body(source: str, method: str, body: str) -> str:
    """Replace the solution region inside ``def method(`` by ``body``."""
    start = source.index(f"def {method}(")
    begin = source.index("### BEGIN SOLUTION", start)
    end = source.index("### END SOLUTION", begin)
    line_start = source.rindex("\n", 0, begin) + 1
    indent = source[line_start:begin]
    new = textwrap.indent(textwrap.dedent(body).strip("\n"), indent) + "\n"
    line_end = source.find("\n", end)
    rest = "" if line_end < 0 else source[line_end + 1:]
    return source[:line_start] + new + rest


def submission(folder, exercise: int, edits=(), bodies=None, extra_cells=(), base=None) -> str:
    """A copy of a solution notebook with edits: (old, new) text
    replacements (each must occur exactly once in the notebook's code),
    method bodies replaced, extra code cells appended. Returns its path."""
    nb = nbformat.read(base or solution_path(exercise), as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    for old, new in edits:
        hits = [c for c in code_cells if old in c.source]
        assert len(hits) == 1 and hits[0].source.count(old) == 1, f"edit target not unique: {old!r}"
        hits[0].source = hits[0].source.replace(old, new)
    for method, body in (bodies or {}).items():
        hits = [c for c in code_cells if f"def {method}(" in c.source]
        assert len(hits) == 1, f"no unique cell defines {method}"
        hits[0].source = replace_body(hits[0].source, method, body)
    for text in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(textwrap.dedent(text)))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, STEMS[exercise] + ".ipynb")
    nbformat.write(nb, path)
    return path


def by_name(result: dict) -> dict:
    return {s["name"]: s for s in result["scenarios"]}


# --------------------------------------------------------------------------
# Solutions: full marks; the CLI's table, JSON, CSV and exit status
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded_solutions(tmp_path_factory):
    out = tmp_path_factory.mktemp("solutions")
    json_path, csv_path = str(out / "grades.json"), str(out / "class.csv")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = grade_main([SOLUTIONS, "--json", json_path, "--csv", csv_path, "--random-seeds", "1",
                             "-j", str(JOBS), "--no-progress"])
    with open(json_path) as f:
        doc = json.load(f)
    return status, doc, csv_path, stdout.getvalue()


@pytest.mark.timeout(240)
def test_every_solution_gets_full_marks(graded_solutions):
    """nbgrader's `validate`: each solution notebook passes every scenario
    with its fixed seeds and a fresh random one."""
    status, doc, _, report = graded_solutions
    assert status == 0, report
    results = {r["exercise"]: r for r in doc["submissions"]}
    assert sorted(results) == sorted(EXERCISES), report
    for number, r in results.items():
        failed = [f"{s['name']} (seed {s['seed']}): {s['message']}" for s in r["scenarios"] if not s["passed"]]
        assert not failed and r["score"] == r["max"] == EXERCISES[number].max_points, \
            f"exercise {number}: {failed or r.get('error')}"
        assert len(doc["random_seeds"]) == 1
        for s in r["scenarios"]:
            assert doc["random_seeds"][0] in [run["seed"] for run in s["runs"]], "the random seed was not run"


def test_grade_report_json_and_csv(graded_solutions):
    """The table names every scenario with its points; the JSON has a
    score, max, message and seeds per scenario; the CSV one row per student."""
    status, doc, csv_path, report = graded_solutions
    assert "=== solutions: 700/700" in report
    assert "vote counting" in report and "15/15" in report
    assert "random seeds this run:" in report
    sub = doc["submissions"][0]
    for key in ("notebook", "student", "exercise", "score", "max", "scenarios", "warnings"):
        assert key in sub
    for key in ("name", "points", "max", "passed", "message", "seed", "runs", "replay"):
        assert key in sub["scenarios"][0]
    with open(csv_path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["student"] + [f"exercise_{n}" for n in range(1, 8)] + ["total", "max"]
    assert rows[1] == ["solutions"] + ["100"] * 7 + ["700", "700"]


# --------------------------------------------------------------------------
# Released exercises: 0 points; exercises/ is what release writes
# --------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_every_released_exercise_gets_zero():
    """nbgrader's `validate --invert`: the student version scores nothing,
    and says why (the method is not written yet)."""
    paths = [os.path.join(EXERCISE_DIR, STEMS[n] + ".ipynb") for n in sorted(EXERCISES)]
    results = grade_notebooks(paths, GradeOptions(random_seeds=[]), jobs=JOBS)
    for r in results:
        assert r["grader_error"] is None and r["error"] is None, r
        assert r["score"] == 0 and r["max"] == 100, r["notebook"]
        assert all("is not written yet" in s["message"] for s in r["scenarios"]), r["scenarios"]


def test_exercises_are_exactly_what_release_writes(tmp_path):
    written = release(SOLUTIONS, str(tmp_path))
    names = sorted(os.path.basename(p) for p in written)
    assert names == sorted(f for f in os.listdir(EXERCISE_DIR) if f.endswith(".ipynb")), \
        "exercises/ and solutions/ hold different notebooks: run `raftkit release solutions/ exercises/`"
    for name in names:
        with open(tmp_path / name, "rb") as a, open(os.path.join(EXERCISE_DIR, name), "rb") as b:
            assert a.read() == b.read(), f"exercises/{name} is stale: run `raftkit release solutions/ exercises/`"


@pytest.mark.timeout(120)
def test_nbgrader_generate_assignment_writes_the_same_exercises(tmp_path):
    """An nbgrader course adopts the kit unchanged: the solution cells carry
    nbgrader's metadata, and with docs/nbgrader_config.py `nbgrader
    generate_assignment` gives every cell the source `raftkit release` gives it."""
    import shutil
    course = tmp_path / "course"
    shutil.copytree(SOLUTIONS, course / "source" / "raft")
    shutil.copy(os.path.join(ROOT, "docs", "nbgrader_config.py"), course)
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    nbgrader = os.path.join(os.path.dirname(sys.executable), "nbgrader")
    proc = subprocess.run([nbgrader, "generate_assignment", "raft", "--force"], cwd=course, env=env,
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stem in STEMS.values():
        ours = nbformat.read(os.path.join(EXERCISE_DIR, stem + ".ipynb"), as_version=4)
        theirs = nbformat.read(course / "release" / "raft" / (stem + ".ipynb"), as_version=4)
        assert [(c.cell_type, c.source) for c in theirs.cells] == [(c.cell_type, c.source) for c in ours.cells], stem
        solution_cells = [c for c in ours.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert solution_cells and all("raise NotImplementedError" in c.source for c in solution_cells), stem


def test_release_is_deterministic_and_strips_solutions(tmp_path):
    release(SOLUTIONS, str(tmp_path / "a"))
    assert release_main([SOLUTIONS, str(tmp_path / "b")]) == 0
    for name in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        nb = nbformat.read(str(tmp_path / "a" / name), as_version=4)
        for cell in nb.cells:
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
        assert nb.metadata["raftkit"]["exercise"] in EXERCISES


def test_strip_solutions_keeps_indentation_and_checks_markers():
    src = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert strip_solutions(src) == "def f():\n    x = 1\n    raise NotImplementedError\n"
    with pytest.raises(ReleaseError, match="never closed"):
        strip_solutions("### BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ReleaseError, match="without"):
        strip_solutions("x = 1\n### END SOLUTION\n")


def test_release_reports_bad_input(tmp_path, capsys):
    assert release_main([str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_solution_notebooks_name_their_exercise_and_tag_the_check_cell():
    for number in STEMS:
        nb = nbformat.read(solution_path(number), as_version=4)
        assert nb.metadata["raftkit"]["exercise"] == number
        checks = [c for c in nb.cells if "raftkit-check" in c.metadata.get("tags", [])]
        assert len(checks) == 1 and checks[0].source.startswith(f"check({number}, ")
        assert any("### BEGIN SOLUTION" in c.source for c in nb.cells if c.cell_type == "code")


# --------------------------------------------------------------------------
# Classic bugs: each costs the scenario that is about it
# --------------------------------------------------------------------------

SEED_TIMER = """
timeout_duration = self.election_timeout()
self.mu.acquire()
term_started = self.current_term
self.mu.release()
ticker = self.clock.ticker(self.config.ticker_interval)
while True:
    ticker.tick()
    self.mu.acquire()
    if self.state != CANDIDATE and self.state != FOLLOWER:
        self.mu.release()
        return
    if term_started != self.current_term:
        return
    elapsed = self.clock.now() - self.election_reset_event
    if elapsed >= timeout_duration:
        self.start_election()
        self.mu.release()
        return
    self.mu.release()
"""

LOCK_ACROSS_RPC = """
with self.mu:
    reply = self.bus.call(self.id, peer, "request_vote", args)
    if reply is None or self.state != CANDIDATE or self.current_term != args.term:
        return
    if reply.vote_granted:
        votes[0] += 1
        if 2 * votes[0] > len(self.peer_ids) + 1:
            self.start_leader()
"""

TRUNCATE_ALWAYS = ("""            for k, entry in enumerate(args.entries):
                index = prev + 1 + k
                if index > self.last_log_index() or self.term_at(index) != entry.term:
                    del self.log[index - 1:]
                    self.log.extend(args.entries[k:])
                    self.persist()
                    break
""", """            del self.log[prev:]
            self.log.extend(args.entries)
            self.persist()
""")

# (name, exercise, the scenario that must fail, edits, bodies, a phrase of its message)
BUGS = [
    ("seed-returns-holding-the-lock", 1, "initial election", [], {"run_election_timer": SEED_TIMER},
     "still held"),
    ("seed-never-retries-a-split-vote", 1, "split vote is retried",
     [("        self.go(self.run_election_timer)\n", "")], {}, "expected one leader"),
    ("timer-ignores-heartbeats", 1, "a leader stays leader",
     [("term_started = self.current_term\n", "term_started, started = self.current_term, self.clock.now()\n"),
      ("elapsed = self.clock.now() - self.election_reset_event", "elapsed = self.clock.now() - started")],
     {}, "terms became"),
    ("votes-twice-in-a-term", 2, "one vote per term",
     [("and self.voted_for in (None, args.candidate_id))", ")")], {}, "voted twice in term 1"),
    ("no-timer-reset-on-granted-vote", 2, "election timer reset on a granted vote",
     [("                self.election_reset_event = self.clock.now()  # granting a vote resets the timer\n",
       "")], {}, "must reset the election timer"),
    ("up-to-date-by-length-only", 2, "up-to-date check (5.4.1)",
     [("up_to_date = (args.last_log_term > last_term\n"
       "                          or (args.last_log_term == last_term and args.last_log_index >= last_index))",
       "up_to_date = args.last_log_index >= last_index")], {}, "is older than ours"),
    ("counts-refused-votes", 2, "vote counting",
     [("            if reply.vote_granted:\n", "            if True:\n")], {}, "refused its vote"),
    ("holds-the-lock-across-an-rpc", 2, "vote counting", [], {"send_request_vote": LOCK_ACROSS_RPC},
     "while node 0's lock self.mu was held"),
    ("truncates-matching-entries", 3, "truncate only on conflict", [TRUNCATE_ALWAYS], {}, "deleted entries"),
    ("commits-past-the-last-new-entry", 3, "commit index rule",
     [("self.commit_index = min(args.leader_commit, last_new)",
       "self.commit_index = min(args.leader_commit, self.last_log_index())")], {}, "min(4, 1) = 1"),
    ("heartbeats-skip-the-check", 3, "consistency check",
     [("if prev > self.last_log_index() or self.term_at(prev) != args.prev_log_term:",
       "if args.entries and (prev > self.last_log_index() or self.term_at(prev) != args.prev_log_term):")],
     {}, "a heartbeat is checked too"),
    ("commits-previous-term-by-counting", 4, "commit rule (Figure 8)",
     [("            if self.term_at(n) != self.current_term:\n"
       "                break  # older terms commit only along with a current-term entry (Figure 8)\n", "")],
     {}, "Figure 8"),
    ("backup-ignores-the-conflict-term", 4, "next_index backup", [],
     {"backup_index": "return max(1, reply.conflict_index)"}, "backup_index should return 8"),
    ("acts-on-old-term-replies", 4, "handling AppendEntries replies",
     [("if self.state != LEADER or self.current_term != args.term:\n"
       "                return  # a reply to an older term's request: ignore it",
       "if self.state != LEADER:\n                return")], {}, "stale"),
    ("does-not-persist-voted-for", 5, "a vote survives a restart", [],
     {"persist": "self.storage.save(pickle.dumps((self.current_term, self.log)), snapshot)",
      "restore": """
          data = self.storage.read_state()
          if data:
              self.current_term, self.log = pickle.loads(data)
      """}, "voted_for must be persisted"),
    ("restore-forgets-the-log", 5, "state survives a restart",
     [("self.current_term, self.voted_for, self.log = pickle.loads(data)",
       "self.current_term, self.voted_for, _ = pickle.loads(data)")], {}, "restarted with log"),
    ("snapshot-off-by-one", 6, "snapshot trims the log",
     [("self.log = self.log[index - self.last_included_index:]  # entries after index",
       "self.log = self.log[index - self.last_included_index - 1:]")], {}, "must hold entries 6-8"),
    ("installs-stale-snapshots", 6, "install snapshot (follower)",
     [("            if index <= self.commit_index:\n"
       "                return InstallSnapshotReply(self.current_term)  # stale: never go backwards\n", "")],
     {}, "stale"),
    ("snapshot-not-persisted", 6, "snapshot trims the log",
     [("self.persist(self.snapshot_data)", "self.persist()")], {}, "must persist data"),
    ("no-dedup-table", 7, "dedup table",
     [("if seen is not None and op.seq <= seen[0]:", "if False:")], {}, "duplicate"),
    ("new-seq-for-every-retry", 7, "lost replies: retry with the same seq",
     [("        self.seq += 1  # one number per operation, the same for all its retries\n"
       "        args = KVArgs(self.client_id, self.seq, kind, key, value)\n", ""),
      ("                reply = bus.call(self.endpoint, self.leader, \"kv_request\", args)",
       "                self.seq += 1\n"
       "                args = KVArgs(self.client_id, self.seq, kind, key, value)\n"
       "                reply = bus.call(self.endpoint, self.leader, \"kv_request\", args)")],
     {}, "applied twice"),
    ("dedup-table-not-in-snapshot", 7, "dedup table", [],
     {"dump": "return pickle.dumps(self.data)",
      "load": "self.data, self.last = (pickle.loads(data) if data else {}), {}"}, "part of the snapshot"),
    # the classes that once slipped through (only a number grows, or only random seeds caught them)
    ("leaks-election-timers", 1, "one election timer per node",
     [("if term_started != self.current_term:\n                    return",
       "if term_started != self.current_term:\n                    pass")], {}, "election timers"),
    ("two-of-four-is-a-majority", 2, "a majority of 4 and of 5",
     [("if 2 * votes[0] > len(self.peer_ids) + 1:", "if 2 * votes[0] >= len(self.peer_ids) + 1:")], {},
     "4 nodes: with 2 votes"),
    ("persists-beside-storage", 5, "persistence goes through Storage", [],
     {"persist": """
          stash = type(self).__dict__.get("stash") or {}
          type(self).stash = stash
          stash[self.id] = pickle.dumps((self.current_term, self.voted_for, self.log))
      """,
      "restore": """
          stash = type(self).__dict__.get("stash") or {}
          if self.id in stash:
              self.current_term, self.voted_for, self.log = pickle.loads(stash[self.id])
      """}, "self.storage holds no state"),
    ("keeps-entries-after-a-disagreeing-snapshot", 6, "install snapshot: more follower rules",
     [("if index <= self.last_log_index() and self.term_at(index) == args.last_included_term:",
       "if index <= self.last_log_index():")], {}, "disagrees with the snapshot"),
]


@pytest.fixture(scope="module")
def graded_bugs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bugs")
    paths = [submission(str(root / name), ex, edits, bodies) for name, ex, _, edits, bodies, _ in BUGS]
    # What the battery catches does not depend on where nodes run (tests/test_isolation.py shows the
    # same runs both ways), so the bugs are graded the quicker way; the solutions and the attacks isolated.
    options = GradeOptions(random_seeds=[], scenario_timeout=30, isolation="none")
    results = grade_notebooks(paths, options, jobs=JOBS)
    return {r["student"]: r for r in results}


def test_at_least_two_bugs_per_exercise():
    counts = {n: sum(1 for b in BUGS if b[1] == n) for n in EXERCISES}
    assert all(c >= 2 for c in counts.values()), counts


@pytest.mark.timeout(1200)  # 25 notebooks, every node in a sandboxed process of its own
@pytest.mark.parametrize("name,exercise,scenario,edits,bodies,phrase", BUGS, ids=[b[0] for b in BUGS])
def test_classic_bug_costs_the_right_scenario(graded_bugs, name, exercise, scenario, edits, bodies, phrase):
    r = graded_bugs[name]
    assert r["grader_error"] is None and r["error"] is None, r
    assert r["exercise"] == exercise
    assert r["score"] < r["max"], f"{name} got full marks"
    s = by_name(r)[scenario]
    assert not s["passed"] and s["points"] == 0, f"{name}: scenario {scenario!r} passed"
    assert phrase in s["message"] + s["where"], f"{name}: {s['message']}\n{s['where']}"
    assert s["seed"] is not None and f"replay({exercise}, \"{scenario}\", seed={s['seed']})" in s["replay"]


def test_feedback_pages_show_each_failure_with_its_last_events(graded_bugs, tmp_path):
    """A failing scenario carries the run's last events (checked when read back
    from the run's process), and the student's page draws them."""
    from raftkit.grading.feedback_page import write_feedback_pages
    name = BUGS[0][0]
    failed = [s for s in graded_bugs[name]["scenarios"] if not s["passed"]]
    assert failed and all(len(s["events"]) > 0 for s in failed if s["message"]), failed
    [page] = write_feedback_pages([graded_bugs[name]], str(tmp_path))
    text = open(page).read()
    assert "<svg" in text and failed[0]["replay"].replace('"', "&quot;") in text


# --------------------------------------------------------------------------
# Misbehaving and broken submissions
# --------------------------------------------------------------------------

FORGE = """
import json, os, sys
print("PASSED 100/100")
print(json.dumps({"type": "result", "ok": True, "score": 100, "nonce": "guess"}))
sys.stderr.write('{"type": "loaded", "ok": true}\\n')
for fd in range(3, 256):  # write a fake verdict on every descriptor we may hold
    try:
        os.write(fd, b'{"type": "result", "ok": true, "nonce": "guess", "message": "forged"}\\n')
    except OSError:
        pass
"""

FORGE_IN_METHOD = """
import json, os
print(json.dumps({"type": "result", "ok": True}))
for fd in range(3, 256):
    try:
        os.write(fd, b'{"type": "result", "ok": true, "nonce": "guess"}\\n')
    except OSError:
        pass
raise NotImplementedError
"""


def body_of(function) -> str:
    """A method's body as text, for a notebook's cell."""
    lines = textwrap.dedent(inspect.getsource(function)).splitlines()
    return textwrap.dedent("\n".join(lines[1:]))


TALKS_WHILE_WAITING = body_of(hostile.NotesItsTicks.run_election_timer)


@pytest.fixture(scope="module")
def graded_misfits(tmp_path_factory):
    """Deadlocks, infinite loops and forgeries, with short limits."""
    root = tmp_path_factory.mktemp("misfits")
    released = {n: os.path.join(EXERCISE_DIR, STEMS[n] + ".ipynb") for n in EXERCISES}
    paths = [
        # a node thread that acquires its own lock twice (and the same handler on the driver thread)
        submission(str(root / "deadlock"), 2, [("        with self.mu:\n            if args.term > "
                                                 "self.current_term:  # all servers",
                                                 "        with self.mu:\n            self.get_state()\n"
                                                 "            if args.term > self.current_term:  # all servers")]),
        # an election timer that never yields
        submission(str(root / "spin-in-a-node-thread"), 1, bodies={"run_election_timer": "while True:\n    pass"}),
        # a handler, called by the scenario itself, that never returns
        submission(str(root / "spin-in-a-handler"), 3, bodies={"append_entries": "while True:\n    pass"}),
        # forged verdicts: printed, and written on every descriptor, from a cell and from the code
        submission(str(root / "forger"), 2, extra_cells=[FORGE], base=released[2]),
        submission(str(root / "forger-in-code"), 2, bodies={"request_vote": FORGE_IN_METHOD,
                                                            "send_request_vote": FORGE_IN_METHOD}),
        # 3 GB: the machine has them, the memory limit (2 GB) does not
        submission(str(root / "memory-hog"), 2, bodies={"request_vote": "blob = bytearray(3 * 2**30)"}),
        # ends its own process
        submission(str(root / "exits"), 2, bodies={"request_vote": "import os\nos._exit(0)"}),
        # a cell that never finishes
        submission(str(root / "hangs-while-loading"), 2, extra_cells=["while True:\n    pass\n"]),
        # an election timer that does more than tick while it waits (the grader predicts idle ticks)
        submission(str(root / "talks-while-waiting"), 1, bodies={"run_election_timer": TALKS_WHILE_WAITING}),
    ]
    options = GradeOptions(random_seeds=[], scenario_timeout=4, watchdog=1.0, load_timeout=3,
                           only=["one vote per term", "initial election", "term rules and the timer"])
    results = grade_notebooks(paths, options, jobs=JOBS)
    return {r["student"]: r for r in results}


@pytest.mark.timeout(120)
def test_deadlock_scores_zero_with_the_stacks(graded_misfits):
    r = graded_misfits["deadlock"]
    assert r["grader_error"] is None and r["score"] == 0, r
    handler = by_name(r)["one vote per term"]     # a handler the scenario calls blocks: the node's stacks
    assert handler["runs"][0]["error_type"] == "DeadlockError", handler
    assert "without reaching a kit primitive" in handler["message"], handler["message"]
    assert "cell 5" in handler["where"] and "self.get_state()" in handler["where"], handler["where"]
    node = by_name(r)["initial election"]         # a node thread blocks: the cluster watchdog
    assert node["runs"][0]["error_type"] == "DeadlockError", node
    assert "self.get_state()" in node["where"], node["where"]


@pytest.mark.timeout(120)
def test_infinite_loops_score_zero_and_say_where(graded_misfits):
    r = graded_misfits["spin-in-a-node-thread"]
    s = by_name(r)["initial election"]
    assert r["score"] == 0 and s["runs"][0]["error_type"] == "DeadlockError"
    assert "without reaching a kit primitive" in s["message"] and "run_election_timer" in s["where"], s
    r = graded_misfits["spin-in-a-handler"]
    s = by_name(r)["term rules and the timer"]    # called by the scenario, run in the node's process
    assert r["score"] == 0 and s["runs"][0]["error_type"] == "DeadlockError", s
    assert "append_entries" in s["where"], s["where"]


@pytest.mark.timeout(120)
def test_printing_or_writing_fake_results_forges_nothing(graded_misfits):
    for student in ("forger", "forger-in-code"):
        r = graded_misfits[student]
        assert r["grader_error"] is None and r["error"] is None, r
        assert r["score"] == 0 and all(not s["passed"] for s in r["scenarios"]), r
    forged = by_name(graded_misfits["forger-in-code"])["one vote per term"]
    # its lines reach nothing that decides: on its own node's pipe they fail its own run
    assert forged["runs"][0]["error_type"] in ("NodeError", "NotImplementedError"), forged


@pytest.mark.timeout(120)
def test_a_timer_the_grader_cannot_predict_is_graded_on_its_real_run(graded_misfits):
    """Its ticks are not idle where the grader predicted them: those runs
    are run again without predictions, and the honest timer gets its marks."""
    scenario = by_name(graded_misfits["talks-while-waiting"])["initial election"]
    assert scenario["passed"] and scenario["points"] == scenario["max"], scenario


@pytest.mark.timeout(120)
def test_memory_limit_exit_and_hung_cells_score_zero_with_a_reason(graded_misfits):
    s = by_name(graded_misfits["memory-hog"])["one vote per term"]
    assert not s["passed"] and "memory limit" in s["message"], s
    s = by_name(graded_misfits["exits"])["one vote per term"]
    assert not s["passed"] and "process exited with code 0" in s["message"], s
    r = graded_misfits["hangs-while-loading"]
    assert r["score"] == 0 and r["grader_error"] is None, r
    last = len(nbformat.read(r["notebook"], as_version=4).cells)  # the hung cell is the last one
    assert "did not finish within 3 s" in r["error"] and f"running cell {last})" in r["error"], r["error"]


# --------------------------------------------------------------------------
# With isolated nodes, one runner process makes a notebook's runs in turn
# --------------------------------------------------------------------------

SLOW_IN_THREE_NODES = """
import time
_kit_timer = MyNode.run_election_timer

def _slow_timer(self):
    while len(self.peer_ids) == 2:  # in a 3-node cluster, each 10 ms tick takes 50 ms of wall time
        time.sleep(0.05)
        self.clock.sleep(0.01)
    _kit_timer(self)

MyNode.run_election_timer = _slow_timer
"""


@pytest.mark.timeout(120)
def test_a_run_past_its_time_limit_does_not_stop_the_next_ones(tmp_path):
    """The runner of a run over its limit is killed; the next scenario
    gets a new runner, and its marks."""
    path = submission(str(tmp_path / "slow"), 2, extra_cells=[SLOW_IN_THREE_NODES])
    [r] = grade_notebooks([path], GradeOptions(seeds=[1], scenario_timeout=2,
                                               only=["initial election", "a majority of 4 and of 5"]))
    assert r["grader_error"] is None and r["error"] is None, r
    slow, quick = by_name(r)["initial election"], by_name(r)["a majority of 4 and of 5"]
    assert slow["runs"][0]["error_type"] == "Timeout" and "did not finish within 2 s" in slow["message"], slow
    assert quick["passed"] and r["score"] == quick["max"], quick


@pytest.mark.timeout(180)
def test_a_run_after_others_in_the_runner_is_the_run_alone(tmp_path):
    """The failing run of a scenario graded after the others, in the
    runner that made them, is the very run a process of its own makes
    (with nodes in-process): the same seed, message and events."""
    name, exercise, scenario, edits, bodies, _ = next(b for b in BUGS if b[0] == "timer-ignores-heartbeats")
    path = submission(str(tmp_path / name), exercise, edits, bodies)
    [after] = grade_notebooks([path], GradeOptions(random_seeds=[], keep_going=True))
    [alone] = grade_notebooks([path], GradeOptions(random_seeds=[], only=[scenario], isolation="none"))
    assert [s["name"] for s in after["scenarios"]].index(scenario) > 0
    late, first = by_name(after)[scenario], by_name(alone)[scenario]
    assert not late["passed"] and late["events"], late
    assert (late["seed"], late["message"], late["events"]) == (first["seed"], first["message"], first["events"])


@pytest.fixture(scope="module")
def graded_broken(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    (root / "malformed").mkdir()
    (root / "malformed" / "02-request-vote.ipynb").write_text("{ this is not json")
    (root / "not-a-notebook").mkdir()
    (root / "not-a-notebook" / "02-request-vote.ipynb").write_text('{"cells": 3}')
    paths = [
        str(root / "malformed" / "02-request-vote.ipynb"),
        str(root / "not-a-notebook" / "02-request-vote.ipynb"),
        submission(str(root / "missing-class"), 2,
                   [("class MyNode(ConsensusModule):", "class MyNod(ConsensusModule):")]),
        submission(str(root / "wrong-signature"), 2,
                   [("def request_vote(self, args: RequestVoteArgs) -> RequestVoteReply:", "def request_vote(self):")]),
        submission(str(root / "inherits-instead"), 2, bodies={}, edits=[
            ("    def send_request_vote(self, peer: int, args: RequestVoteArgs, votes: list) -> None:",
             "    def send_request_vote_unused(self, peer: int, args: RequestVoteArgs, votes: list) -> None:")]),
        submission(str(root / "syntax-error"), 2, extra_cells=["def broken(:\n    pass\n"]),
    ]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = grade_main(paths + ["--random-seeds", "0", "--json", str(root / "out.json"), "--no-progress",
                                     "-j", str(JOBS)])
    with open(root / "out.json") as f:
        results = {r["student"]: r for r in json.load(f)["submissions"]}
    return status, results, stdout.getvalue()


@pytest.mark.timeout(120)
def test_broken_submissions_get_a_clear_message_and_zero(graded_broken):
    status, results, report = graded_broken
    assert status == 0, "a broken submission is the student's problem, not the grader's"
    expected = {
        "malformed": "is not a readable Jupyter notebook",
        "not-a-notebook": "is not a readable Jupyter notebook",
        "missing-class": "missing class: the notebook defines no MyNode",
        "wrong-signature": "wrong signature: MyNode.request_vote(self) must accept the same arguments",
        "inherits-instead": "MyNode does not define send_request_vote()",
    }
    for student, phrase in expected.items():
        r = results[student]
        assert r["score"] == 0 and r["grader_error"] is None, r
        assert phrase in r["error"], f"{student}: {r['error']}"
        assert "Traceback" not in r["error"]
        assert phrase in report
    r = results["syntax-error"]  # a broken extra cell is a warning; the rest is graded
    assert r["error"] is None and r["score"] == r["max"], r
    assert any("syntax error" in w for w in r["warnings"]), r["warnings"]


@pytest.mark.timeout(120)
def test_processes_that_die_are_the_students_error_and_leave_no_files(tmp_path, monkeypatch):
    """A notebook that kills its own process, exits it, or kills the grading
    worker above it gets an accurate message and a 0, never a GRADER ERROR
    or a timeout it did not take; no temporary folder outlives its worker."""
    import tempfile
    cells = {"kills-itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
             "exits": "import os\nos._exit(0)",
             "kills-the-worker": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"}
    paths = [submission(str(tmp_path / who), 2, extra_cells=[code]) for who, code in cells.items()]
    scratch = tmp_path / "tmp"  # a temp folder of this test's own: other processes use the system's
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))  # and the workers' default, were it not their own
    results = {r["student"]: r for r in grade_notebooks(paths, GradeOptions(random_seeds=[]), jobs=JOBS)}
    expected = {"kills-itself": "ended (killed by SIGKILL", "exits": "ended (exit status 0)"}
    worker = results.pop("kills-the-worker")  # its cells run in a sandbox: what they kill is their own
    assert worker["grader_error"] is None and worker["score"] == worker["max"], worker
    for who, phrase in expected.items():
        r = results[who]
        assert r["grader_error"] is None and r["score"] == 0, r
        assert phrase in r["error"] and "did not finish within" not in r["error"], r["error"]
    assert not os.listdir(scratch), f"left behind: {sorted(os.listdir(scratch))}"


def test_grade_main_exits_nonzero_when_the_grader_breaks(monkeypatch, capsys):
    """A worker that cannot run is the grader's failure: status 2, and the
    table says GRADER ERROR (not a 0 for the student)."""
    import sys
    monkeypatch.setattr(sys, "executable", "/bin/false")
    assert grade_main([solution_path(1), "--no-progress", "--random-seeds", "0"]) == 2
    assert "GRADER ERROR" in capsys.readouterr().out


def test_grade_main_exit_status_on_bad_arguments(tmp_path, capsys):
    assert grade_main([str(tmp_path / "missing.ipynb"), "--no-progress"]) == 2
    assert "no such file" in capsys.readouterr().err


# --------------------------------------------------------------------------
# check() and replay(), in-process, as a notebook uses them
# --------------------------------------------------------------------------

class DoubleVoter(broken.DoubleVoter):
    """Grants every vote of the current term (tests/broken.py); it spells out
    send_request_vote too, because check() grades only methods a class writes."""

    def send_request_vote(self, peer, args, votes):
        return raftkit.ConsensusModule.send_request_vote(self, peer, args, votes)


def test_check_prints_pass_fail_and_replay_lines(capsys):
    check(2, DoubleVoter)
    out = capsys.readouterr().out
    assert "  PASS  term rules" in out
    assert "  FAIL  one vote per term (seed 1)" in out and "voted twice in term 1" in out
    assert 'replay: c = raftkit.grading.replay(2, "one vote per term", seed=1)' in out
    check(2, raftkit.ConsensusModule)
    out = capsys.readouterr().out
    assert "does not define request_vote()" in out


def test_replay_returns_the_cluster_just_before_the_violation(capsys):
    """A safety violation: the cluster comes back re-run to just before
    the event that broke the invariant; one step() breaks it again."""
    c = replay(2, "split votes stay safe", 1, DoubleVoter)
    try:
        assert c.failure["error_type"] == "SafetyViolation"
        assert "c.step() runs it" in capsys.readouterr().out
        with pytest.raises(raftkit.SafetyViolation, match="Election Safety"):
            c.step()
    finally:
        c.stop()


def test_replay_of_a_failed_check_is_frozen_where_it_failed():
    c = replay(2, "one vote per term", 1, DoubleVoter)
    try:
        assert c.nodes[0].voted_for == 2 and "voted twice" in c.failure["message"]
    finally:
        c.stop()


def test_scenario_names_and_points():
    for number, ex in EXERCISES.items():
        assert ex.max_points == 100, f"exercise {number}: {ex.max_points}"
        names = [s.name for s in ex.scenarios]
        assert len(names) == len(set(names))
        assert any(s.public for s in ex.scenarios)
        assert all(s.doc for s in ex.scenarios), "every scenario says what must hold"


# --------------------------------------------------------------------------
# Gradescope: the autograder bundle, run against a fake /autograder tree
# --------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_gradescope_autograder_bundle_grades_a_submission(tmp_path, capsys):
    """`raftkit gradescope-autograder` writes a zip whose run_autograder grades
    /autograder/submission into /autograder/results/results.json; when the
    grader cannot run at all, results.json still says so."""
    import stat
    import zipfile

    from raftkit.cli import main
    bundle = tmp_path / "autograder.zip"
    assert main(["gradescope-autograder", str(bundle), "--", "--only", "vote counting",
                 "--random-seeds", "0", "-j", "1"]) == 0
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as z:
        names = z.namelist()
        z.extractall(root)
    assert {"setup.sh", "run_autograder", "raftkit-src/pyproject.toml"} <= set(names)
    assert not any(n.startswith(("raftkit-src/solutions", "raftkit-src/tests")) for n in names)
    run = root / "run_autograder"
    run.chmod(run.stat().st_mode | stat.S_IXUSR)
    (root / "submission").mkdir()
    submission(str(root / "submission"), 2)
    raftkit_bin = os.path.join(os.path.dirname(sys.executable), "raftkit")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), RAFTKIT=raftkit_bin)
    subprocess.run(["bash", str(run)], env=env, check=True, capture_output=True, timeout=200)
    results = json.loads((root / "results" / "results.json").read_text())
    [test] = results["tests"]
    assert test["name"].endswith("vote counting") and test["score"] == test["max_score"] > 0, test
    assert results["score"] == test["score"]

    (root / "results" / "results.json").unlink()
    subprocess.run(["bash", str(run)], env=dict(env, RAFTKIT="/bin/false"), check=True, timeout=60)
    broken = json.loads((root / "results" / "results.json").read_text())
    assert broken["score"] == 0 and "could not run" in broken["output"]
