"""The OS sandbox around node processes: bubblewrap (``bwrap``), the tool
Flatpak uses (https://github.com/containers/bubblewrap).

A template process (and every node host it forks) runs in fresh user, PID,
network, IPC and UTS namespaces, as an unprivileged user, with a root file
system that holds only: the Python installation and environment (read-only),
the kit that node code may use (read-only; for grading, the student's view
of it), the student's own folder (read-only) and a private ``/tmp``. Nothing
else of the machine is there: not the instructor's ``solutions/``, not
other students' folders, not the grader's files, not other processes
(``/proc`` is the sandbox's own). ``--die-with-parent`` ends it with the
process that started it, and rlimits bound memory, processes, CPU time and
file size. Where bubblewrap cannot make namespaces, :mod:`.uidsandbox` is
the weaker fallback (a user of its own) for a grader that runs as root.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Sandbox", "bwrap_problem"]

KIT_MOUNT = "/opt/raftkit"          # where the kit appears inside the sandbox
_SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/alternatives",
           "/etc/localtime", "/etc/ssl")


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None if bubblewrap can make a sandbox here, else why not."""
    path = shutil.which("bwrap")
    if path is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        probe = subprocess.run([path, "--unshare-all", "--unshare-user", "--die-with-parent", "--ro-bind", "/", "/",
                                "--proc", "/proc", "--dev", "/dev", "true"],
                               capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bubblewrap cannot run: {e}"
    if probe.returncode != 0:
        return f"bubblewrap cannot make namespaces here: {probe.stderr.decode(errors='replace').strip()[:300]}"
    return None


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The rlimits of a sandboxed template and its hosts (``apply_limits``
    sets them from ``RAFTKIT_LIMITS``), shared by both kinds of sandbox."""

    memory_mb: int | None = 2048
    cpu_seconds: int | None = 3600
    processes: int = 4096
    file_mb: int = 64

    def limits(self) -> tuple:
        return (self.memory_mb, self.cpu_seconds, self.processes, self.file_mb)

    def inner_env(self, **values: str) -> dict:
        """The template's whole environment: ``values``, and what every
        sandboxed template gets."""
        return {**values, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                "MALLOC_ARENA_MAX": "2", "RAFTKIT_LIMITS": ",".join(str(v or 0) for v in self.limits())}


@dataclass(frozen=True)
class Sandbox(Limits):
    """How to wrap a template's command line. ``kit`` is the ``raftkit``
    package folder node code sees; ``folder`` the student's folder."""

    kit: str
    folder: str | None = None

    def kit_inside(self) -> str:
        """Where the kit's package appears inside the sandbox."""
        return os.path.join(KIT_MOUNT, "raftkit")

    def key(self) -> tuple:
        return (self.kit, self.folder, *self.limits())

    def wrap(self, cmd: list[str], env: dict, fd: int) -> tuple[list[str], dict]:
        args = ["bwrap", "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
                "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/opt"]
        for path in _SYSTEM + (sys.base_prefix, sys.prefix):
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        args += ["--ro-bind", self.kit, os.path.join(KIT_MOUNT, "raftkit")]
        if self.folder:
            args += ["--ro-bind", self.folder, self.folder]
        args += ["--chdir", "/tmp"]
        for k, v in self.inner_env(PYTHONPATH=KIT_MOUNT, HOME="/tmp").items():
            args += ["--setenv", k, v]
        return args + cmd, dict(env)


def apply_limits() -> None:
    """In the sandboxed template, before any student code: the rlimits the
    sandbox asked for (inherited by every node process)."""
    spec = os.environ.get("RAFTKIT_LIMITS")
    if not spec:
        return
    import resource
    memory_mb, cpu, procs, file_mb = (int(v) for v in spec.split(","))
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, procs), (resource.RLIMIT_FSIZE, file_mb << 20)]
    if memory_mb:
        wanted.append((resource.RLIMIT_AS, memory_mb << 20))
    if cpu:
        wanted.append((resource.RLIMIT_CPU, cpu))
    for which, value in wanted:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, hard))
