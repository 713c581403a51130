"""Fixtures several test files share.

Helpers that are plain functions or classes live beside this file and are
imported by package name: ``tests.broken`` (nodes with one classic bug each)
and ``tests.eliben`` (the pieces of eliben/raft's test harness).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Test workers running side by side (pytest-xdist's gw0, gw1, ...) give
    their clusters a core each (raftkit.clock: RAFTKIT_CPU)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        os.environ.setdefault("RAFTKIT_CPU", worker[2:])


@pytest.fixture
def no_leaked_threads():
    """leaktest's counterpart: leaving ``with Cluster(...)`` ends every thread
    the cluster started, client threads included (API.md: "leaving the block
    stops every thread")."""
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in threading.enumerate()
              if t not in before and t.is_alive() and t.name.startswith("raftkit")]
    assert not leaked, f"threads still running after the cluster was stopped: {leaked}"


def run_python(code: str, *args, expect_rc: int = 0, env: dict | None = None) -> str:
    """Run ``code`` in a fresh interpreter that imports this checkout's raftkit;
    return its stdout. ``env`` adds to (and overrides) the environment."""
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=full_env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == expect_rc, (
        f"subprocess exited with {proc.returncode}, want {expect_rc}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(name="run_python")
def run_python_fixture():
    """The ``run_python`` helper, for tests that start a fresh interpreter."""
    return run_python


def processes_marked(mark: str) -> list[int]:
    """Pids of the processes whose command line holds ``mark`` (Linux /proc):
    what a hostile cell left running."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found
