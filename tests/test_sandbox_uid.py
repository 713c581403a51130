"""The weaker sandbox for where bubblewrap cannot make namespaces: a user of
its own per student (``--sandbox uid``, chosen automatically for a root
grader in a container). Forced here, where bubblewrap works, so that the
attacks run against it; each attack that worked would define the honest
class, so an attack that earns 0 is one that failed."""

from __future__ import annotations

import os
import pathlib
import signal
import time

import pytest

from raftkit.grading import GradeOptions, grade_notebooks
from raftkit.grading.cli import grade_main, grade_parser
from raftkit.isolation import uidsandbox
from raftkit.isolation.uidsandbox import BASE_UID, exposed, readable_by_others, uid_problem
from tests.conftest import processes_marked
from tests.test_grading import EXERCISE_DIR, JOBS, STEMS, by_name, solution_path, submission

as_root = pytest.mark.skipif(uid_problem() is not None, reason=f"no uid sandbox here: {uid_problem()}")
RELEASED = os.path.join(EXERCISE_DIR, STEMS[2] + ".ipynb")
ONLY = ["term rules", "initial election"]  # 15 points
MARK = "raftkit-uid-attack-5c1e"


def _honest_class() -> str:
    from raftkit.grading.notebook import read_cells
    _, cells = read_cells(solution_path(2))
    return next(src for _, src in cells if "class MyNode" in src)


@pytest.fixture
def open_tmp():
    """A folder every user can enter (pytest's own are private to root)."""
    import tempfile
    with tempfile.TemporaryDirectory() as where:
        os.chmod(where, 0o755)
        yield pathlib.Path(where)


# --------------------------------------------------------------------------
# What is readable by the sandbox's user, and the choice of sandbox
# --------------------------------------------------------------------------

def test_readable_by_others_follows_the_mode_bits_of_the_path(open_tmp):
    (open_tmp / "open").write_text("x")
    os.chmod(open_tmp / "open", 0o644)
    (open_tmp / "closed").write_text("x")
    os.chmod(open_tmp / "closed", 0o600)
    (open_tmp / "shut").mkdir(mode=0o700)
    (open_tmp / "shut" / "inside").write_text("x")
    os.chmod(open_tmp / "shut" / "inside", 0o644)
    assert readable_by_others(str(open_tmp / "open"))
    assert not readable_by_others(str(open_tmp / "closed"))
    assert not readable_by_others(str(open_tmp / "shut" / "inside"))  # its folder is closed
    assert not readable_by_others(str(open_tmp / "missing"))
    assert exposed([str(open_tmp)]) == [str(open_tmp / "open")]
    os.chmod(open_tmp, 0o711)  # others may pass, not list: the folder's name list is private, a file is not
    assert exposed([str(open_tmp)]) == [str(open_tmp / "open")] and not readable_by_others(str(open_tmp))


def test_auto_picks_bwrap_then_a_user_of_its_own_then_refuses(monkeypatch):
    from raftkit.grading import isolated
    monkeypatch.setattr(isolated, "bwrap_problem", lambda: None)
    monkeypatch.setattr(isolated, "uid_problem", lambda: None)
    assert isolated.choose_sandbox("auto") == ("bwrap", None)
    monkeypatch.setattr(isolated, "bwrap_problem", lambda: "no namespaces")
    assert isolated.choose_sandbox("auto") == ("uid", None)
    assert isolated.choose_sandbox("bwrap") == ("bwrap", "no namespaces")
    monkeypatch.setattr(isolated, "uid_problem", lambda: "not root")
    mode, problem = isolated.choose_sandbox("auto")
    assert problem == "no namespaces; and not root"
    assert isolated.choose_sandbox("uid") == ("uid", "not root")
    assert isolated.choose_sandbox("none") == ("none", None)
    with pytest.raises(ValueError, match="unknown sandbox"):
        isolated.choose_sandbox("chroot")


def test_the_unsafe_flag_is_the_same_as_sandbox_none():
    assert grade_parser().parse_args(["x", "--unsafe-no-sandbox"]).sandbox == "none"
    assert grade_parser().parse_args(["x", "--sandbox", "uid"]).sandbox == "uid"
    assert grade_parser().parse_args(["x"]).sandbox == "auto"
    with pytest.raises(SystemExit):
        grade_parser().parse_args(["x", "--sandbox", "chroot"])


@as_root
def test_grading_refuses_while_the_solutions_are_readable_by_other_users(tmp_path, capsys):
    """In this repository solutions/ is readable by others: the uid sandbox
    would let every student's code read it."""
    nb = submission(str(tmp_path / "alice"), 2)
    if not exposed([os.path.dirname(solution_path(2))]):
        pytest.skip("solutions/ is private here")
    assert grade_main(["--sandbox", "uid", nb, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "refusing to grade" in err and solution_path(2) in err
    assert f"chmod -R o-rwx {os.path.dirname(solution_path(2))}" in err


@as_root
def test_classmates_notebooks_readable_by_others_are_refused_too(open_tmp, capsys, monkeypatch):
    from raftkit.grading import cli, isolated
    monkeypatch.setattr(isolated, "kit_source", lambda: str(open_tmp / "no-kit-here"))
    classes = open_tmp / "class"
    for name in ("alice", "bob"):
        submission(str(classes / name), 2)
    for p in [classes, *classes.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert grade_main(["--sandbox", "uid", str(classes), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(classes / "bob" / (STEMS[2] + ".ipynb")) in err and f"chmod -R o-rwx {classes}" in err
    os.chmod(classes, 0o700)  # what the message says, in effect: then only the sandbox check remains
    assert cli._sandbox_refusal(grade_parser().parse_args(["--sandbox", "uid", str(classes)]),
                                [type("S", (), {"student": n, "path": ""}) for n in "ab"]) is None


@as_root
def test_no_sandbox_without_a_reaper_to_clean_up_after_it(monkeypatch):
    monkeypatch.setattr(uidsandbox.sys, "executable", "/bin/true")  # a reaper that ends at once
    monkeypatch.setattr(uidsandbox, "_REAPER_START", 20.0)
    before = set(pathlib.Path(uidsandbox.tempfile.gettempdir()).glob("raftkit-sandbox-*"))
    with pytest.raises(OSError, match="reaper did not start"):
        uidsandbox.sandbox_root()
    assert set(pathlib.Path(uidsandbox.tempfile.gettempdir()).glob("raftkit-sandbox-*")) <= before


def test_the_template_refuses_a_uid_below_the_sandbox_range(monkeypatch):
    monkeypatch.setenv("RAFTKIT_UID", "0")
    with pytest.raises(RuntimeError, match="refusing to run the student's code as uid 0"):
        uidsandbox.enter_uid_sandbox(("import", "x", "y", ()))


def test_the_gradescope_bundle_grades_without_the_unsafe_flag(tmp_path):
    import zipfile

    from raftkit.grading.gradescope import build_autograder
    from tests.test_grading import ROOT
    z = zipfile.ZipFile(build_autograder(str(tmp_path / "a.zip"), ["--random-seeds", "2"], ROOT))
    run = z.read("run_autograder").decode()
    assert "--unsafe-no-sandbox" not in run and "--sandbox none" not in run
    assert 'chmod -R go-rwx "$ROOT/source"' in run  # nothing of the bundle is for the student's code


def test_gradescope_results_say_which_sandbox_graded():
    from raftkit.grading.gradescope import gradescope_results
    from raftkit.grading.isolated import WEAKER
    result = {"exercise": 2, "title": "t", "score": 15, "max": 15, "error": None, "grader_error": None,
              "warnings": [WEAKER, "cell 3 raised ValueError"], "scenarios": [
                  {"name": "s", "points": 15, "max": 15, "passed": True, "message": ""}]}
    assert gradescope_results([result])["output"] == f"raftkit: 15/15 points\n{WEAKER}"


# --------------------------------------------------------------------------
# Cleaning up after a sandbox's user
# --------------------------------------------------------------------------

@as_root
def test_a_users_processes_are_killed_and_its_files_removed(open_tmp):
    tmp_path = open_tmp
    uid = BASE_UID + 4_100_000 + os.getpid() % 1000  # above any pid: no live sandbox has it
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a process of that user that forks a daemon, writes a file, and waits forever
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            if os.fork() == 0:
                os.setsid()
                (shared / "left-behind").write_text("x")
                os.write(w, b"ready")
                while True:
                    signal.pause()
            while True:
                signal.pause()
        finally:
            os._exit(1)
    os.close(w)
    assert os.read(r, 5) == b"ready"  # the daemon runs and its file exists
    (shared / "someone-elses").write_text("y")
    uidsandbox.kill_user(uid)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9
    assert os.read(r, 1) == b""  # the daemon's end of the pipe closed: it is dead too
    uidsandbox.remove_owned(str(tmp_path), uid)
    assert sorted(p.name for p in shared.iterdir()) == ["someone-elses"]


# --------------------------------------------------------------------------
# Inside: who the student's code is, and what it can do
# --------------------------------------------------------------------------

WHO_AM_I = '''
import os
class MyNode(MyNode):
    def start(self):
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        home = os.stat(os.environ["HOME"])
        self.emit("note", detail=repr((os.getresuid(), os.getresgid(), os.getgroups(),
            status["CapEff"].strip(), status["CapPrm"].strip(), status["CapBnd"].strip(),
            status["NoNewPrivs"].strip(), os.environ["HOME"] == os.environ["TMPDIR"],
            os.path.dirname(os.path.dirname(os.getcwd())) == os.path.dirname(os.environ["HOME"]),
            home.st_uid, oct(home.st_mode & 0o777), sorted(os.environ))))
        super().start()
'''


@pytest.mark.slow
@as_root
def test_node_processes_run_as_an_unprivileged_user_of_their_own(tmp_path):
    import ast

    import raftkit
    from raftkit.grading import EXERCISES
    from raftkit.grading.isolated import load_isolated
    from raftkit.grading.notebook import read_cells
    _, cells = read_cells(solution_path(2))
    loaded, impl, _ = load_isolated(cells + [(99, WHO_AM_I)], EXERCISES[2], GradeOptions(sandbox="uid"),
                                    str(tmp_path), str(tmp_path))
    assert loaded["ok"], loaded
    assert loaded["warnings"][0].startswith("graded in a weaker sandbox")
    solutions = os.path.dirname(solution_path(2))
    warned = [w for w in loaded["warnings"] if w.startswith("readable by the student's code")]
    assert bool(warned) == bool(exposed([solutions])) and all(solutions in w for w in warned)  # grading API users
    c = raftkit.Cluster(3, seed=1, node_class=impl)
    try:
        notes = {e.detail for e in c.trace if e.kind == "note"}
        assert len(notes) == 1  # the three nodes: one student, one user
        uids, gids, groups, eff, prm, bnd, nnp, tmp_is_home, cwd_is_copy, home_owner, home_mode, env = \
            ast.literal_eval(notes.pop())
        uid = uids[0]
        assert uid >= BASE_UID and uids == (uid,) * 3 and gids == (uid,) * 3 and groups == []
        assert int(eff, 16) == int(prm, 16) == int(bnd, 16) == 0 and nnp == "1"
        assert tmp_is_home and cwd_is_copy and home_owner == uid and home_mode == "0o700"
        assert env == ["HOME", "IPYTHONDIR", "LANG", "MALLOC_ARENA_MAX", "PATH", "PYTHONDONTWRITEBYTECODE",
                       "PYTHONPATH", "RAFTKIT_LIMITS", "RAFTKIT_UID", "TMPDIR"]
        assert c.check_one_leader() in range(3)
    finally:
        c.stop()


@pytest.mark.slow
@as_root
def test_the_template_imports_nothing_from_the_working_folder_while_it_is_root(tmp_path, monkeypatch):
    """The template starts as root: a module in the folder the grader runs in
    (a student's folder, say) must not be imported then."""
    from raftkit.grading import EXERCISES
    from raftkit.grading.isolated import load_isolated
    from raftkit.grading.notebook import read_cells
    marker = tmp_path / "imported-as"
    for name in ("bisect", "heapq", "statistics", "raftkit"):
        (tmp_path / f"{name}.py").write_text(f"import os\nopen({str(marker)!r}, 'a').write(str(os.getuid()))\n")
    monkeypatch.chdir(tmp_path)
    _, cells = read_cells(solution_path(2))
    loaded, _, template = load_isolated(cells, EXERCISES[2], GradeOptions(sandbox="uid"), str(tmp_path),
                                        str(tmp_path))
    assert loaded["ok"], loaded
    template.close()
    assert not marker.exists()


# --------------------------------------------------------------------------
# Attacks, graded in one run with an honest classmate
# --------------------------------------------------------------------------

IF_ROOT = "if os.getuid() == 0 or os.geteuid() == 0:\n    ATTACK_WORKED = True\n"
THEN = "\nif ATTACK_WORKED:\n    exec(HONEST, globals())\n"


def attack(body: str, honest: str) -> str:
    return (f"import os\nHONEST = {honest!r}\nATTACK_WORKED = False\n" + IF_ROOT + body + THEN)


READ_A_ROOT_ONLY_FILE = """
try:
    exec(open({secret!r}).read(), globals())  # the instructor's class, in a root-only file
except OSError:
    pass
"""

READ_A_CLASSMATE = """
import glob
for path in glob.glob("/tmp/raftkit-sandbox-*/**/*.ipynb", recursive=True) + glob.glob({classmate!r} + "/*"):
    if os.path.realpath(path).startswith(os.path.dirname(os.environ["HOME"]) + "/"):
        continue  # its own copy
    try:
        open(path).read()
        ATTACK_WORKED = True
    except OSError:
        pass
"""

WRITE_OUTSIDE = """
import glob, raftkit
kit = os.path.dirname(raftkit.__file__)
for folder in [{classmate!r}, {grader_tmp!r}, kit, os.path.dirname(kit), os.path.dirname(os.getcwd()), "/etc",
               {source_kit!r}] + glob.glob("/tmp/raftkit-sandbox-*"):
    try:
        with open(os.path.join(folder, "{mark}.txt"), "w") as f:
            f.write("was here")
        ATTACK_WORKED = True
    except OSError:
        pass
with open("/tmp/{mark}.txt", "w") as f:  # world-writable: allowed, and removed after grading
    f.write("was here")
try:
    with open(raftkit.__file__, "a") as f:
        f.write("# {mark}")
    ATTACK_WORKED = True
except OSError:
    pass
"""

KILL_THE_GRADER = """
import signal
def parent_of(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
targets = [os.getppid(), parent_of(os.getppid()), 1]
for pid in filter(str.isdigit, os.listdir("/proc")):  # and every sandbox's reaper (root: cleans up after it)
    try:
        if b"reaper_main" in open(f"/proc/{pid}/cmdline", "rb").read():
            targets.append(int(pid))
    except OSError:
        pass
if len(targets) < 4:  # this sandbox's reaper at least: it must be visible, or this attack proves nothing
    raise RuntimeError("no reaper seen")
for target in targets:
    try:
        os.kill(target, signal.SIGKILL)
        ATTACK_WORKED = True
    except OSError:
        pass
"""

PTRACE_THE_GRADER = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for target in (os.getppid(), 1):
    if libc.ptrace(16, target, 0, 0) == 0:  # PTRACE_ATTACH
        libc.ptrace(17, target, 0, 0)  # PTRACE_DETACH
        ATTACK_WORKED = True
for target in (os.getppid(), 1):
    for what in ("mem", "environ", "fd"):
        try:
            os.listdir(f"/proc/{target}/fd") if what == "fd" else open(f"/proc/{target}/{what}", "rb").read(1)
            ATTACK_WORKED = True
        except OSError:
            pass
"""

BECOME_ROOT = """
for switch in (lambda: os.setuid(0), lambda: os.setresuid(0, 0, 0), lambda: os.setgid(0), lambda: os.setgroups([0])):
    try:
        switch()
        ATTACK_WORKED = True
    except OSError:
        pass
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
if int(status["CapEff"], 16) or int(status["CapBnd"], 16) or status["NoNewPrivs"].strip() != "1":
    ATTACK_WORKED = True
"""

LEAVE_A_PROCESS = f"""
import ctypes, sys
if os.fork() == 0:
    try:  # (a child that raised would go on as a copy of the template, and report that)
        os.setsid()
        if os.fork() == 0:
            ctypes.CDLL(None).prctl(1, 0)  # no parent-death signal
            os.execv(sys.executable, [sys.executable, "-c", "import time  # {MARK}\\nwhile True: time.sleep(1)"])
    finally:
        os._exit(0)
"""


def _until(condition, seconds: float):
    """The reaper cleans up after the loader ended, on its own: wait for it (bounded)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.fixture(scope="module")
def graded_uid_attacks(tmp_path_factory):
    root = tmp_path_factory.mktemp("uid-attacks")
    os.chmod(root, 0o700)
    honest = _honest_class()
    classmate = str(root / "honest")
    secret = root / "secret.py"
    secret.write_text(honest)
    os.chmod(secret, 0o600)
    import raftkit
    source_kit = os.path.dirname(raftkit.__file__)
    grader_tmp = str(root)

    def nb(name, body):
        return submission(str(root / name), 2, base=RELEASED, extra_cells=[attack(body, honest)])

    paths = [
        submission(classmate, 2),
        nb("reads-a-root-only-file", READ_A_ROOT_ONLY_FILE.format(secret=str(secret))),
        nb("reads-a-classmate", READ_A_CLASSMATE.format(classmate=classmate)),
        nb("writes-outside", WRITE_OUTSIDE.format(classmate=classmate, grader_tmp=grader_tmp, source_kit=source_kit,
                                                  mark=MARK)),
        nb("kills-the-grader", KILL_THE_GRADER),
        nb("ptraces-the-grader", PTRACE_THE_GRADER),
        nb("becomes-root", BECOME_ROOT),
        nb("leaves-a-process", LEAVE_A_PROCESS),
        nb("control", "ATTACK_WORKED = True\n"),  # the oracle itself: a worked attack earns full marks
    ]
    options = GradeOptions(random_seeds=[], only=ONLY, watchdog=2.0, load_timeout=30, sandbox="uid")
    results = grade_notebooks(paths, options, jobs=JOBS)
    yield {r["student"]: r for r in results}, root


UID_ATTACKS = ["reads-a-root-only-file", "reads-a-classmate", "writes-outside", "kills-the-grader",
               "ptraces-the-grader", "becomes-root", "leaves-a-process"]


@pytest.mark.slow
@as_root
@pytest.mark.timeout(900)
@pytest.mark.parametrize("student", UID_ATTACKS)
def test_an_attack_fails_under_the_uid_sandbox(graded_uid_attacks, student):
    results, _ = graded_uid_attacks
    r = results[student]
    assert r["grader_error"] is None, r
    assert r["score"] == 0, (student, r["error"], [(s["name"], s["message"]) for s in r["scenarios"]])
    # the attack ran to its end (the message says how it did not)
    assert r["error"] is None and not any("raised" in w for w in r["warnings"]), (r["error"], r["warnings"])
    assert all("not written yet" in s["message"] for s in r["scenarios"]), r["scenarios"]  # and won nothing


@pytest.mark.slow
@as_root
@pytest.mark.timeout(900)
def test_under_the_uid_sandbox_the_honest_classmate_and_the_oracle_get_full_marks(graded_uid_attacks):
    results, _ = graded_uid_attacks
    for student in ("honest", "control"):
        r = results[student]
        assert r["grader_error"] is None and r["score"] == 15, r
        assert any(w.startswith("graded in a weaker sandbox") for w in r["warnings"])
    assert by_name(results["honest"])["initial election"]["passed"]


@pytest.mark.slow
@as_root
@pytest.mark.timeout(900)
def test_under_the_uid_sandbox_nothing_is_left_behind(graded_uid_attacks):
    _, root = graded_uid_attacks
    assert _until(lambda: not processes_marked(MARK), 20.0), processes_marked(MARK)
    assert _until(lambda: not list(pathlib.Path("/tmp").glob(f"{MARK}*")), 20.0)  # /tmp was writable: cleaned
    assert not list(root.rglob(f"{MARK}*"))
    assert (root / "honest" / (STEMS[2] + ".ipynb")).exists()

