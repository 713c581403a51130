"""Forging grades, tried as a hostile student would (issue: "grades that
cannot be forged"). One submission per attack class, graded in one run with
an honest classmate: each attack earns nothing it did not earn honestly, the
classmate's grade is exact, and nothing outlives grading or changes the kit."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest

from raftkit.grading import GradeOptions, grade_notebooks
from raftkit.isolation.sandbox import bwrap_problem
from tests.conftest import processes_marked
from tests.test_grading import EXERCISE_DIR, JOBS, ROOT, STEMS, by_name, solution_path, submission

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bwrap_problem() is not None, reason=f"no sandbox here: {bwrap_problem()}")]

RELEASED = os.path.join(EXERCISE_DIR, STEMS[2] + ".ipynb")
ONLY = ["term rules", "initial election"]           # one white-box and one black-box scenario: 15 points
KIT = pathlib.Path(ROOT, "raftkit")
MARK = "raftkit-attack-marker-7f3a"

CALL_THE_REFERENCE = {
    "request_vote": "return ConsensusModule.request_vote(self, args)",
    "send_request_vote": "return super().send_request_vote(peer, args, votes)",
}

PATCH_THE_CHECKS = """
import sys
import raftkit.grading.battery as battery, raftkit.safety as safety, raftkit.cluster as cluster
for ex in battery.EXERCISES.values():
    for sc in ex.scenarios:
        object.__setattr__(sc, "run", lambda ctx, impl, seed: None)
safety.SafetyMonitor.check = lambda self, node: None
cluster.Cluster.check_one_leader = lambda self: 0
for name, module in list(sys.modules.items()):
    if name.startswith("raftkit.grading.battery"):
        module.expect = lambda *a, **k: None
"""

WALK_THE_STACK = """
import gc, sys, types
frame = sys._getframe()
while frame is not None:  # whatever called the cells: make it report success
    for name, value in list(frame.f_globals.items()):
        if name in ("run_scenario", "_run_main", "describe_error") and callable(value):
            frame.f_globals[name] = lambda *a, **k: {"ok": True, "seed": 1, "time": 0.0, "error_type": "",
                                                     "message": "", "where": ""}
    frame = frame.f_back
for obj in gc.get_objects():
    if isinstance(obj, types.FunctionType) and obj.__name__ == "run_scenario":
        obj.__code__ = (lambda *a, **k: {"ok": True}).__code__
"""

FORGE_EVERYWHERE = """
import json, os
line = json.dumps({"type": "result", "ok": True, "score": 100, "nonce": "guess"}).encode() + b"\\n"
for pid in ("self", str(os.getppid()), "1"):
    for fd in range(0, 64):
        for path in (f"/proc/{pid}/fd/{fd}",):
            try:
                out = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                os.write(out, line)
                os.close(out)
            except OSError:
                pass
for fd in range(3, 256):
    try:
        os.write(fd, line)
    except OSError:
        pass
"""

READ_THE_SOLUTIONS = f"""
import json
try:  # the instructor's notebook, next to the installed kit: copy its code
    nb = json.load(open({solution_path(2)!r}))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "class MyNode" in "".join(cell["source"]):
            exec("".join(cell["source"]))
except OSError:
    pass
"""

POISON_THE_KIT = f"""
import glob
for path in glob.glob({str(KIT)!r} + "/**/*.py", recursive=True) + glob.glob("/opt/raftkit/raftkit/**/*.py",
                                                                            recursive=True):
    try:
        with open(path, "a") as f:
            f.write("\\n# {MARK}\\n")
    except OSError:
        pass
"""

WRITE_OUTSIDE = """
import os, shutil
for folder in ({folder!r}, os.path.expanduser("~"), "/tmp", {classmate!r}):
    try:
        with open(os.path.join(folder, "{mark}.txt"), "w") as f:
            f.write("was here")
    except OSError:
        pass
    try:
        shutil.rmtree({classmate!r})
    except OSError:
        pass
"""

LEAVE_A_PROCESS = f"""
import os, subprocess, sys
try:
    subprocess.Popen([sys.executable, "-c", "import time  # {MARK}\\nwhile True: time.sleep(1)"],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
except OSError:
    pass
if os.fork() == 0:
    try:  # (a child that raised would go on as a copy of the template, and report that)
        os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", "import time  # {MARK}\\nwhile True: time.sleep(1)"])
    finally:
        os._exit(0)
"""

KILL_THE_GRADER = """
import os, signal
for target in (os.getppid(), 1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass
try:
    os.killpg(os.getpgid(0), signal.SIGKILL)
except OSError:
    pass
"""

THREAD_BOMB = {"request_vote": "while True:\n    self.go(self.get_state)"}


def _kit_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(KIT.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def graded_attacks(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    classmate = str(root / "honest")
    before = _kit_digest()
    paths = [
        submission(classmate, 2),
        submission(str(root / "calls-the-reference"), 2, bodies=CALL_THE_REFERENCE),
        submission(str(root / "patches-the-checks"), 2, extra_cells=[PATCH_THE_CHECKS], base=RELEASED),
        submission(str(root / "walks-the-stack"), 2, extra_cells=[WALK_THE_STACK], base=RELEASED),
        submission(str(root / "forges-results"), 2, extra_cells=[FORGE_EVERYWHERE], base=RELEASED),
        submission(str(root / "forges-results-at-run-time"), 2,
                   bodies={"request_vote": FORGE_EVERYWHERE + "\nraise NotImplementedError"}),
        submission(str(root / "reads-the-solutions"), 2, extra_cells=[READ_THE_SOLUTIONS], base=RELEASED),
        submission(str(root / "poisons-the-kit"), 2, extra_cells=[POISON_THE_KIT], base=RELEASED),
        submission(str(root / "writes-outside"), 2, base=RELEASED, extra_cells=[WRITE_OUTSIDE.format(
            folder=str(root), classmate=classmate, mark=MARK)]),
        submission(str(root / "leaves-a-process"), 2, extra_cells=[LEAVE_A_PROCESS], base=RELEASED),
        submission(str(root / "kills-the-grader"), 2, extra_cells=[KILL_THE_GRADER], base=RELEASED),
        submission(str(root / "thread-bomb"), 2, bodies=THREAD_BOMB),
    ]
    options = GradeOptions(random_seeds=[], only=ONLY, watchdog=2.0, load_timeout=30)
    results = grade_notebooks(paths, options, jobs=JOBS)
    yield {r["student"]: r for r in results}, root, before


ATTACKS = ["calls-the-reference", "patches-the-checks", "walks-the-stack", "forges-results",
           "forges-results-at-run-time", "reads-the-solutions", "poisons-the-kit", "writes-outside",
           "leaves-a-process", "kills-the-grader", "thread-bomb"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("student", ATTACKS)
def test_an_attack_earns_nothing(graded_attacks, student):
    results, _, _ = graded_attacks
    r = results[student]
    assert r["grader_error"] is None, r
    assert r["score"] == 0, (student, r["error"], r["scenarios"])  # an error while loading is a 0 too


@pytest.mark.timeout(600)
def test_the_honest_classmate_graded_in_the_same_run_gets_full_marks(graded_attacks):
    results, _, _ = graded_attacks
    r = results["honest"]
    assert r["grader_error"] is None and r["score"] == 15, r
    assert not any("WITHOUT a sandbox" in w for w in r["warnings"])


@pytest.mark.timeout(600)
def test_calling_the_reference_says_it_is_not_available(graded_attacks):
    results, _, _ = graded_attacks
    s = by_name(results["calls-the-reference"])["term rules"]
    assert "is not available while exercise 2 is graded" in s["message"] + s["where"], s


@pytest.mark.timeout(600)
def test_nothing_is_left_behind_and_the_kit_is_unchanged(graded_attacks):
    results, root, before = graded_attacks
    assert _kit_digest() == before
    assert not processes_marked(MARK)
    assert not list(root.rglob(f"{MARK}*")) and not list(pathlib.Path("/tmp").glob(f"{MARK}*"))
    assert (root / "honest" / (STEMS[2] + ".ipynb")).exists()


@pytest.mark.timeout(600)
def test_a_thread_bomb_is_stopped_with_a_note(graded_attacks):
    results, _, _ = graded_attacks
    s = by_name(results["thread-bomb"])["term rules"]
    assert "live threads" in s["message"], s


def test_a_textual_copy_of_the_reference_is_flagged_for_the_instructor():
    import inspect
    import textwrap

    from raftkit.grading import EXERCISES
    from raftkit.grading.kitview import same_as_reference
    from raftkit.raft import ConsensusModule
    spec = EXERCISES[2].classes[0]
    head = "from raftkit import ConsensusModule\nclass MyNode(ConsensusModule):\n"
    body = textwrap.indent(textwrap.dedent(inspect.getsource(ConsensusModule.request_vote)), "    ")
    assert same_as_reference([(1, head + body)], spec) == ["request_vote"]
    renamed = body.replace("args", "a").replace("changed", "dirty").replace("    ", "  ")  # and reformatted
    assert same_as_reference([(1, "%load_ext raftkit"), (2, head + renamed)], spec) == ["request_vote"]
    own = head + "  def request_vote(self, args):\n    return None\n"
    assert same_as_reference([(1, own)], spec) == []


NODES_APART = '''
import os, socket
class MyNode(MyNode):
    def start(self):
        with open("/tmp/shared-note", "a") as f:  # another node's line here would be a channel
            f.write(f"{self.id} ")
        try:  # no network, not even with the other nodes: no socket at all
            socket.socket(socket.AF_UNIX).bind("\\0raftkit-nodes-meet-here")
            net = "a socket"
        except OSError as e:
            net = type(e).__name__
        self.emit("note", detail=f"{open('/tmp/shared-note').read()}|{os.listdir('/proc')}|{os.getpid()}|{net}")
        super().start()

    def request_vote(self, args):
        os._exit(3)
'''


def test_the_nodes_of_one_student_are_apart_from_each_other(tmp_path):
    """No shared /tmp, network or process list between one run's nodes; a
    node process that exits is reported with its code."""
    import raftkit
    from raftkit.grading import EXERCISES
    from raftkit.grading.isolated import load_isolated
    from raftkit.grading.notebook import read_cells
    from raftkit.isolation.process import strict
    _, cells = read_cells(solution_path(2))
    loaded, impl, _ = load_isolated(cells + [(99, NODES_APART)], EXERCISES[2], GradeOptions(),
                                    os.path.dirname(solution_path(2)), str(tmp_path))
    assert loaded["ok"], loaded
    # the grader's class predicts ticks: the node's exit fails a prediction first, and the
    # grader runs again without predictions (strict), where the exit is what is reported
    for node_class, error in ((impl, r"ticks predicted idle, ran \(its process exited with code 3\)"),
                              (strict(impl), r"node \d's process exited with code 3")):
        c = raftkit.Cluster(3, seed=1, node_class=node_class)
        try:
            notes = sorted(e.detail for e in c.trace if e.kind == "note")
            assert notes == ["0 |[]|1|PermissionError", "1 |[]|1|PermissionError", "2 |[]|1|PermissionError"]
            with pytest.raises(raftkit.NodeError, match=error):
                c.check_one_leader()
        finally:
            c.stop()


# --------------------------------------------------------------------------
# Exercise 7: the store runs in each server's process, the clerk in one of its own
# --------------------------------------------------------------------------

RELEASED_7 = os.path.join(EXERCISE_DIR, STEMS[7] + ".ipynb")
ONLY_7 = ["dedup table", "basic operations", "duplicated requests", "finding the leader among 4"]  # 50 points
DEDUP_POINTS = 15  # the store's own scenario: what an honest store with a hostile clerk earns

CALL_THE_REFERENCE_7 = {
    "apply": "return KVStore.apply(self, op)",
    "dump": "return super().dump()",
    "load": "return KVStore.load(self, data)",
    "request": "return super().request(kind, key, value)",
}

PATCH_THE_CHECKER = """
import sys
import raftkit.grading.battery as battery, raftkit.lincheck as lincheck
lincheck.check = lambda *a, **k: lincheck.CheckResult("ok", {}, {}) if hasattr(lincheck, "CheckResult") else None
for name, module in list(sys.modules.items()):
    if name.startswith("raftkit.grading.battery"):
        module.check_history = module.appended_once = module.answers_from_the_log = lambda *a, **k: None
        module.expect = lambda *a, **k: None
for sc in battery.EXERCISES[7].scenarios:
    object.__setattr__(sc, "run", lambda ctx, impl, seed: None)
"""

FORGE_THE_HISTORY = {"request": """
    made_up = type(self).__dict__.get("made_up")
    if made_up is None:
        made_up = type(self).made_up = {}
    if kind == "put":
        made_up[key] = value
        return None
    if kind == "append":
        made_up[key] = made_up.get(key, "") + value
    return made_up.get(key, "")
"""}

GIVE_UP_AT_ONCE = {"request": "raise ClerkTimeout('maybe applied: any history is linearizable then')"}

READ_THE_SOLUTIONS_7 = f"""
import json
try:
    nb = json.load(open({solution_path(7)!r}))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "class MyKVStore" in "".join(cell["source"]):
            exec("".join(cell["source"]))
except OSError:
    pass
"""


@pytest.fixture(scope="module")
def graded_kv_attacks(tmp_path_factory):
    root = tmp_path_factory.mktemp("kv-attacks")
    before = _kit_digest()
    paths = [
        submission(str(root / "honest"), 7),
        submission(str(root / "calls-the-reference"), 7, bodies=CALL_THE_REFERENCE_7),
        submission(str(root / "patches-the-checker"), 7, extra_cells=[PATCH_THE_CHECKER], base=RELEASED_7),
        submission(str(root / "forges-the-history"), 7, bodies=FORGE_THE_HISTORY),
        submission(str(root / "gives-up-at-once"), 7, bodies=GIVE_UP_AT_ONCE),
        submission(str(root / "forges-results-from-the-clerk"), 7,
                   bodies={"request": FORGE_EVERYWHERE + "\nraise NotImplementedError"}),
        submission(str(root / "reads-the-solutions"), 7, extra_cells=[READ_THE_SOLUTIONS_7], base=RELEASED_7),
    ]
    options = GradeOptions(random_seeds=[], only=ONLY_7, watchdog=2.0, load_timeout=30)
    results = grade_notebooks(paths, options, jobs=JOBS)
    yield {r["student"]: r for r in results}, before


@pytest.mark.timeout(600)
@pytest.mark.parametrize("student,honest_part", [
    ("calls-the-reference", 0), ("patches-the-checker", 0), ("reads-the-solutions", 0),
    ("forges-the-history", DEDUP_POINTS), ("gives-up-at-once", DEDUP_POINTS),
    ("forges-results-from-the-clerk", DEDUP_POINTS)])
def test_a_kv_attack_earns_only_its_honest_part(graded_kv_attacks, student, honest_part):
    results, _ = graded_kv_attacks
    r = results[student]
    assert r["grader_error"] is None, r
    assert r["score"] == honest_part, (student, r["error"], r["scenarios"])


@pytest.mark.timeout(600)
def test_the_honest_kv_classmate_gets_full_marks_and_the_kit_is_unchanged(graded_kv_attacks):
    results, before = graded_kv_attacks
    r = results["honest"]
    assert r["grader_error"] is None and r["score"] == 50, r
    assert not any("WITHOUT a sandbox" in w for w in r["warnings"])
    assert _kit_digest() == before


@pytest.mark.timeout(600)
def test_kv_attacks_are_told_why(graded_kv_attacks):
    results, _ = graded_kv_attacks
    ref = by_name(results["calls-the-reference"])
    assert "is not available while exercise 7 is graded" in ref["dedup table"]["message"] + ref["dedup table"]["where"]
    assert "not available" in ref["basic operations"]["message"] + ref["basic operations"]["where"]
    forged = by_name(results["forges-the-history"])["basic operations"]
    assert "which no server answered it" in forged["message"], forged
    gave_up = by_name(results["gives-up-at-once"])["duplicated requests"]
    assert "before its timeout" in gave_up["message"], gave_up


FORK_APART = """
import os, socket
from raftkit.isolation import host
ids = os.getuid(), os.getgid()
r, w = os.pipe()
pid, apart = host._fork_apart()
if pid == 0:
    host._settle_namespaces(*ids)
    maps = open("/proc/self/uid_map").read().split() + open("/proc/self/gid_map").read().split()
    mapped = "mapped" if maps == [str(ids[0]), str(ids[0]), "1", str(ids[1]), str(ids[1]), "1"] else maps
    host._hide_proc()
    host._no_sockets()
    try:
        socket.socketpair()
        net = "sockets"
    except PermissionError:
        net = "no-sockets"
    os.write(w, f"{apart} {os.getpid()} {os.getuid()} {mapped} {os.listdir('/proc')} {net}".encode())
    os._exit(0)
os.close(w)
print(os.read(r, 1000).decode(), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="clone(2) is called by number")
def test_a_node_process_is_apart_from_its_first_instruction():
    """In bubblewrap a host is forked straight into namespaces of its own
    (one clone(2)): pid 1 of its PID namespace, its user and group mapped
    to themselves, no /proc; then it can make no socket."""
    import subprocess
    import sys

    from raftkit.isolation.sandbox import Sandbox
    cmd, env = Sandbox(kit=str(KIT)).wrap([sys.executable, "-c", FORK_APART], {}, 0)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "1", "65534", "mapped", "[]", "no-sockets", "0"], out
