"""A weaker sandbox for where bubblewrap cannot make namespaces (Docker
containers such as Gradescope's, which run the grader as root): a user of
its own.

The template (and every node host it forks) starts as root, loads the
kit's own modules, then becomes an unprivileged user no other process has
(uid and gid ``BASE_UID`` + the pid of the sandbox's *reaper*, never 0):
no supplementary groups, every capability dropped (the bounding set too),
``PR_SET_NO_NEW_PRIVS`` (no setuid program gives them back), the rlimits
of :mod:`.sandbox` (``RLIMIT_NPROC`` now counts this student's processes
only), a cleared environment, and ``HOME``, ``TMPDIR`` and the working
directory in a private folder (owned by that user, mode 700) under a
root-owned folder of mode 711 that holds the student's view of the kit
and a copy of the student's folder (root's, read-only to that user; the
folder is closed to everyone else, so classmates cannot read each other's).

What it protects. The student's code runs as a user that owns nothing
outside its private folder, so it cannot: write the kit, the grader's
files or another student's files; read files that are not readable by
*others* (mode 700/600, such as the grader's temporary folders); signal,
ptrace or read ``/proc/<pid>/{fd,mem,environ}`` of the grader or of
another student's processes (each template has its own user); become root
again (``setuid(0)``, setuid programs, file capabilities). The *reaper*, a
root process started with the sandbox, waits for the process that made
the sandbox to end, then kills every process of the sandbox's user (so a
double-forked daemon does not outlive grading), removes what that user
left in ``/tmp``, ``/var/tmp`` and ``/dev/shm``, and removes the sandbox's
folder.

What it does NOT protect (bubblewrap does). There is no network, PID, IPC
or mount namespace: the student's code sees the machine's process list in
``/proc`` (command lines included), can open network connections
(loopback included) and write world-writable folders (``/tmp``: there is no
disk quota, only the size limit per file); and it can read every file that is
readable by others. So ``solutions/`` and other
students' notebooks must not be readable by others: ``raftkit grade``
refuses to grade in this mode while they are (see :func:`exposed`), and
says which ``chmod`` fixes it. The nodes of one student share their user,
so they can signal each other and talk behind the bus (a socket, a file in
``/tmp``): a node of its own user per host would need the template to keep
``CAP_SETUID``, that is to keep root's power in a process that runs the
student's cells, which is worse. Each *student* has a user of their own.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .sandbox import Limits

__all__ = ["UidSandbox", "uid_problem", "exposed", "readable_by_others", "enter_uid_sandbox", "stdlib_problem"]

BASE_UID = 2_000_000_000  # + a pid (at most 2**22): below 2**31, far from any real user
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 1, 24, 38
_KIT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
_FOLDER_LIMIT = 64 << 20  # bytes of the student's folder copied into the sandbox
_REAPER_START = 30.0  # seconds a reaper may take to start on a loaded machine


@functools.lru_cache(maxsize=1)
def uid_problem() -> str | None:
    """None if this process can run code as a user of its own, else why not."""
    if os.geteuid() != 0:
        return "the grader does not run as root (it needs root to switch the student's code to a user of its own)"
    pid = os.fork()
    if pid == 0:  # the probe: the same switch the sandbox makes
        try:
            os.setgroups([])
            os.setresgid(BASE_UID, BASE_UID, BASE_UID)
            os.setresuid(BASE_UID, BASE_UID, BASE_UID)
            os._exit(0 if os.getresuid() == (BASE_UID,) * 3 else 1)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return f"cannot switch to an unprivileged user (uid {BASE_UID}) here"
    return None


def readable_by_others(path: str) -> bool:
    """Whether a user who owns nothing and is in no group could read
    ``path`` (a file's content, a folder's listing): every folder above it
    searchable by others, and it readable by others. (``os.access`` answers
    for this process's user only.)"""
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not _enterable(os.path.dirname(path)):
        return False
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
    return st.st_mode & need == need


def _enterable(folder: str) -> bool:
    """Whether others may enter ``folder`` (it and every folder above it)."""
    folder = os.path.abspath(folder)
    while True:
        try:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if folder == os.path.dirname(folder):
            return True
        folder = os.path.dirname(folder)


def exposed(paths) -> list[str]:
    """The files among ``paths`` (folders: every file below them) that the
    sandbox's user could read."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                found += [p for p in (os.path.join(folder, f) for f in sorted(files)) if readable_by_others(p)]
        elif readable_by_others(path):
            found.append(os.path.abspath(path))
    return found


def stdlib_problem() -> str | None:
    """None if the sandbox's user can import the Python standard library,
    else why not (then only modules loaded before the switch work)."""
    where = os.path.dirname(os.__file__)
    if readable_by_others(where) and readable_by_others(os.path.join(where, "os.py")):
        return None
    return (f"the Python installation ({where}) is not readable by other users: the student's code can import only "
            "the modules the kit loaded before it ran (install Python where others can read it, e.g. /usr)")


def sandbox_root() -> tuple[str, int]:
    """A fresh folder for one sandbox and its user: starts the sandbox's
    reaper, whose pid names the user. The folder is root's, mode 750, group
    the sandbox's: its user (and root) may enter it, no one else."""
    parent = next((p for p in (tempfile.gettempdir(), "/tmp", "/var/tmp") if _enterable(p)), None)
    if parent is None:
        raise OSError("no temporary folder that other users can enter (/tmp is not)")
    uid = _start_reaper(root := tempfile.mkdtemp(prefix="raftkit-sandbox-", dir=parent))
    os.chown(root, 0, uid)
    os.chmod(root, 0o750)
    return root, uid


def publish(path: str) -> None:
    """Make a folder the grader wrote readable, not writable, by others."""
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o755)
        for f in files:
            p = os.path.join(folder, f)
            if not os.path.islink(p):
                os.chmod(p, 0o644)


def copy_folder(folder: str, root: str) -> str:
    """A copy of the student's folder under ``root``, readable, not writable
    (its files up to 64 MB in all; links are skipped). Returns where it is."""
    target = os.path.join(root, "folder", os.path.basename(os.path.abspath(folder)) or "submission")
    left = [_FOLDER_LIMIT]

    def skip(where, names):
        out = set()
        for name in names:
            p = os.path.join(where, name)
            if os.path.islink(p) or not (os.path.isdir(p) or os.path.isfile(p)):
                out.add(name)
            elif os.path.isfile(p):
                size = os.path.getsize(p)
                if size > left[0]:
                    out.add(name)
                else:
                    left[0] -= size
        return out

    os.makedirs(os.path.dirname(target), exist_ok=True)
    with contextlib.suppress(OSError):
        shutil.copytree(folder, target, ignore=skip)
    os.makedirs(target, exist_ok=True)
    publish(os.path.dirname(target))
    return target


@dataclass(frozen=True)
class UidSandbox(Limits):
    """How to start a template as a user of its own (same interface as
    :class:`.sandbox.Sandbox`). ``root`` and ``uid`` come from
    :func:`sandbox_root`; ``kit`` is the ``raftkit`` package and ``folder``
    the student's folder, both copied under ``root``."""

    root: str
    uid: int
    kit: str
    folder: str | None = None

    def kit_inside(self) -> str:
        return self.kit

    def key(self) -> tuple:
        return ("uid", self.root, self.uid, self.kit, self.folder, *self.limits())

    def wrap(self, cmd: list[str], env: dict, fd: int) -> tuple[list[str], dict]:
        """The template's command and its cleared environment."""
        uid, home = self.uid, os.path.join(self.root, "home")
        os.makedirs(home, 0o700, exist_ok=True)
        os.chown(home, uid, uid)
        inner = self.inner_env(PYTHONPATH=os.path.dirname(self.kit), HOME=home, TMPDIR=home, RAFTKIT_UID=str(uid))
        i = cmd.index("-c")  # it starts as root: no module from the working folder or a user's site folder
        code = (f"import os, sys; os.chdir({os.path.dirname(self.kit)!r}); "
                f"sys.path[:] = [p for p in sys.path if p and os.path.isabs(p)]; {cmd[i + 1]}")
        return [cmd[0], "-s", *cmd[1:i], "-c", code, *cmd[i + 2:]], inner


_REAPERS: list = []  # this process holds the write end of each reaper's stdin: its end is their signal


def _start_reaper(root: str) -> int:
    """Start the root process that cleans up after the sandbox once this
    process ends; returns the sandbox's uid."""
    import select
    code = "import sys; del sys.path[0]; from raftkit.isolation.uidsandbox import reaper_main as m; m()"
    proc = subprocess.Popen([sys.executable, "-s", "-c", code, root], stdin=subprocess.PIPE, cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={"PYTHONPATH": _KIT_ROOT, "PATH": "/usr/bin:/bin"})
    ready = select.select([proc.stdout], [], [], _REAPER_START)[0] and proc.stdout.read(6) == b"ready\n"
    proc.stdout.close()
    if not ready:  # no one would clean up after the sandbox: no sandbox
        proc.kill()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        raise OSError("the uid sandbox's reaper did not start")
    _REAPERS.append(proc)
    return BASE_UID + proc.pid


def reaper_main() -> None:
    """The reaper: wait for stdin to close (the process that made the
    sandbox ended), then kill every process of the sandbox's user, remove
    what it left in world-writable folders, and the sandbox's folder."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    uid, root = BASE_UID + os.getpid(), sys.argv[1]
    os.write(1, b"ready\n")
    os.close(1)
    while True:
        try:
            if not os.read(0, 1 << 12):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    kill_user(uid)
    for folder in _WORLD_WRITABLE:
        remove_owned(folder, uid)
    shutil.rmtree(root, ignore_errors=True)


def kill_user(uid: int) -> None:
    """SIGKILL every process of user ``uid``: a child that becomes that user
    calls ``kill(-1)``, which reaches all of them but itself (a process
    that is forking when the signal comes cannot finish the fork)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(2):
                with contextlib.suppress(OSError):
                    os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def remove_owned(folder: str, uid: int) -> None:
    """Remove the files and folders below ``folder`` that user ``uid`` owns
    (links are removed, never followed)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            p = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                st = os.lstat(p)
                if st.st_uid == uid:
                    if stat.S_ISDIR(st.st_mode):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        os.unlink(p)
                elif stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH:  # where it could write too
                    remove_owned(p, uid)


def enter_uid_sandbox(spec) -> None:
    """In the template, before it loads the student's code: if started by
    a :class:`UidSandbox` (``RAFTKIT_UID``), load the kit's loader named by
    ``spec`` (and what its ``preload`` names) as root, then become the
    sandbox's user for good. Nothing else happens before the switch."""
    uid = os.environ.get("RAFTKIT_UID")
    if not uid:
        return
    uid = int(uid)
    if uid < BASE_UID:
        raise RuntimeError(f"refusing to run the student's code as uid {uid}")  # root or a real user
    import ctypes
    import importlib
    if isinstance(spec, tuple) and spec and spec[0] == "load" and str(spec[1]).startswith("raftkit."):
        loader = importlib.import_module(spec[1])
        if hasattr(loader, "preload"):
            loader.preload()
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getppid()
    for cap in range(64):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a change of user cleared it: die with the grader
    if os.getppid() != parent:  # the grader ended before the line above
        os._exit(70)
    with contextlib.suppress(OSError):
        os.setuid(0)
    if os.getresuid() != (uid,) * 3 or os.getresgid() != (uid,) * 3 or os.getgroups():
        raise RuntimeError("the switch to the sandbox's user did not hold")
    os.chdir(os.environ["HOME"])
