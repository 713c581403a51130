"""Grading submissions: processes, limits and the result channel.

Theory of operation
-------------------
Three kinds of process take part; only the last two ever run student code.

``raftkit grade`` (the *parent*: this module)
    starts one *worker* per notebook (``python -m raftkit.grading.worker``,
    at most ``-j`` at a time, each in its own session), and reads the
    worker's verdict from a pipe it created for that worker. It kills a
    worker that overruns the notebook's time limit. It never imports the
    student's code.

the *worker* (``grading/worker.py``)
    reads the notebook (``nbformat``), picks the code cells to run (all
    of them except those tagged ``raftkit-check`` or ``raftkit-skip``),
    and forks a *loader*. It then asks the loader for one run per
    (scenario, seed), enforces the per-run time limit, scores, and writes
    the verdict on the parent's pipe. The worker itself never executes a
    line of the notebook: it is the only process that can write the
    verdict, and its pipe to the parent is closed in every child right
    after the fork, before any student code runs.

the *loader* (forked from the worker; ``grading/loader.py``)
    closes the parent's pipe, sends its stdout/stderr to ``/dev/null``
    (so nothing the notebook prints can reach any channel that is read),
    lowers its memory limit (``RLIMIT_AS``) and executes the cells once,
    in an IPython shell (magics work) with file names ``<cell N>``. It
    checks that the expected classes exist with the right methods and
    signatures, then serves run requests: for each it forks a *run* that
    inherits the student's classes, so the cells run once per notebook
    while every (scenario, seed) still gets a fresh process.

a *run* (forked from the loader; ``grading/loader.py``, the scenario itself ``grading/runs.py``)
    moves into its own process group, arms ``faulthandler`` to dump every
    thread's stack and exit at the time limit, runs one scenario with one
    seed under the cluster watchdog, and writes one JSON line carrying the
    request's random nonce on the worker's pipe, then ``_exit``\\ s. The
    worker kills the run's process group at the deadline (and after every
    run, so nothing the student started survives).

With nodes isolated (``GradeOptions.isolation="process"``, the default)
the loader and its runs execute only the kit: the notebook's cells run in a
sandboxed *template* process that forks every node process of a run
(``grading/isolated.py``, ``raftkit.isolation``; for exercise 7 also each
clerk's process and a bare store's, ``isolation/kvprocess.py``), so the
student's code never shares a process with the checks or the verdict. So
one *runner* forked from the loader makes the notebook's runs one after
another (a fresh process per run would run nothing the runner does not);
it stops each run's clusters after sending its verdict (a runner that
cannot within 5 s ends), and a runner that ended, or was killed at a run's
time limit, is replaced for the next run.

The result channel: a line is a verdict only if it is valid JSON, says
``"type": "result"``, carries the nonce that the worker drew for that
request, and arrives while that run is the one in progress. Printing
"PASSED 100/100" goes to ``/dev/null``; the notebook's outputs are never
read. What this does *not* stop is student code that deliberately digs the
nonce out of its own process's memory and writes to the pipe: the student's
nodes run in the same process as the checks that judge them, so a
determined cheat can also patch the checks. As with nbgrader and DSLabs,
staff should read code that scores suspiciously; the JSON says which runs
passed, with their seeds, so any result can be re-run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict

from .kitview import compile_kit
from .options import GradeOptions, grader_error, student_of
from .procs import kill_group

__all__ = ["grade_notebooks", "grade_notebook", "kill_workers"]


def grade_notebook(path: str, options: GradeOptions, slot: int | None = None) -> dict:
    """Grade one notebook in a fresh worker process. Never raises for a
    bad submission; a result with ``grader_error`` means grading broke.
    ``slot``: the worker's place among those running at once (its clocks
    then get a core of their own, see ``raftkit.clock``)."""
    path = os.path.abspath(path)
    _compile_kit_once()
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "raftkit.grading.worker", "--result-fd", str(write_fd),
           "--options", json.dumps(asdict(options)), path]
    t0 = time.monotonic()
    import shutil
    import subprocess
    # An empty folder as the worker's working directory: `python -m` puts it first on sys.path,
    # so nothing next to the submission (a json.py, a raftkit/ folder) can shadow the grader's modules.
    # It is also the worker's TMPDIR, so removing it here removes every temporary file of the
    # worker and its children, even after they were killed.
    home = tempfile.mkdtemp(prefix="raftkit-worker-")
    env = dict(os.environ, MALLOC_ARENA_MAX="2", PYTHONDONTWRITEBYTECODE="1", TMPDIR=home)
    if slot is not None:
        env["RAFTKIT_CPU"] = str(slot)
    try:
        proc = subprocess.Popen(cmd, pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True, env=env, cwd=home)
    except OSError as e:
        os.close(read_fd)
        os.close(write_fd)
        shutil.rmtree(home, ignore_errors=True)
        return grader_error(path, f"cannot start the grading worker: {e}")
    with _LIVE_LOCK:
        _LIVE.add(proc.pid)
    try:
        return _collect(proc, path, read_fd, write_fd, options, t0)
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
        shutil.rmtree(home, ignore_errors=True)


_compile_kit_once = functools.cache(compile_kit)  # (workers write no bytecode: see grade_notebook's env)


def _collect(proc, path, read_fd, write_fd, options, t0) -> dict:
    import subprocess
    os.close(write_fd)
    deadline = t0 + options.notebook_timeout + 30.0
    chunks, err = [], b""
    with os.fdopen(read_fd, "rb") as reader:
        watched = [reader, proc.stderr]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _terminate(proc.pid)
                proc.wait()
                return grader_error(path, f"the grading worker did not finish within "
                                           f"{options.notebook_timeout + 30:.0f} s and was killed")
            ready, _, _ = select.select(watched, [], [], min(left, 1.0))
            if reader in ready:
                data = os.read(reader.fileno(), 1 << 16)
                if not data:
                    break
                chunks.append(data)
            if proc.stderr in ready:
                data = os.read(proc.stderr.fileno(), 1 << 16)
                if data:
                    err = (err + data)[-20000:]
                else:
                    watched.remove(proc.stderr)
    try:
        err += proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[1] or b""
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        err += proc.communicate()[1] or b""
    kill_group(proc.pid)  # anything left in the worker's session
    try:
        result = json.loads(b"".join(chunks).decode())
    except ValueError:
        tail = err.decode(errors="replace").strip()[-2000:]
        if proc.returncode < 0 and "Traceback" not in tail:  # a signal the grader did not send
            return _killed_by_the_notebook(path, -proc.returncode)
        return grader_error(path, f"the grading worker exited with status {proc.returncode} without a "
                                   f"result{': ' + tail if tail else ''}")
    result["time"] = round(time.monotonic() - t0, 3)
    return result


def grade_notebooks(paths, options: GradeOptions, jobs: int = 1, progress: bool = False,
                    on_result=None) -> list[dict]:
    """Grade notebooks, ``jobs`` at a time, in the order given. Ctrl-C
    kills every worker (and what they started) before it propagates.
    ``on_result(k, result)`` is called as each notebook finishes (to save it)."""
    import queue
    from concurrent.futures import ThreadPoolExecutor, as_completed
    results: list = [None] * len(paths)
    bar = _progress(len(paths), progress)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        slots = queue.SimpleQueue()  # a worker's slot is free again when its notebook is done
        for k in range(max(1, jobs)):
            slots.put(k)

        def grade_in_a_slot(path):
            slot = slots.get()
            try:
                return grade_notebook(path, options, slot)
            finally:
                slots.put(slot)
        futures = {pool.submit(grade_in_a_slot, p): k for k, p in enumerate(paths)}
        for fut in as_completed(futures):
            k = futures[fut]
            try:
                results[k] = fut.result()
            except Exception as e:  # a bug of the grader itself
                results[k] = grader_error(paths[k], f"{type(e).__name__}: {e}")
            if on_result is not None:
                on_result(k, results[k])
            bar.update(1)
            r = results[k]
            bar.set_postfix_str(f"{os.path.basename(paths[k])} {r.get('score', 0)}/{r.get('max', 0)}")
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        kill_workers()
        raise
    finally:
        pool.shutdown(wait=True)
        bar.close()
    return results


_LIVE: set = set()              # pids of running workers (each leads its own session)
_LIVE_LOCK = threading.Lock()


def kill_workers() -> None:
    """Stop every running worker and what it started (for Ctrl-C)."""
    with _LIVE_LOCK:
        pids = list(_LIVE)
    for pid in pids:
        _terminate(pid)


def _terminate(pid, grace: float = 2.0) -> None:
    """SIGTERM a worker (it kills its loader and run, which lead their own
    process groups), then SIGKILL whatever is left of its group."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if done:
            break
        time.sleep(0.02)
    kill_group(pid)


def _killed_by_the_notebook(path, sig):
    """The worker died of a signal the grader did not send: the notebook's
    code (which runs in the worker's children) sent it, or a memory limit did."""
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
    return {"notebook": os.path.abspath(path), "student": student_of(path), "exercise": None, "title": "",
            "score": 0, "max": 0, "grader_error": None, "warnings": [], "scenarios": [],
            "error": f"the process grading this notebook was killed by {name} while the notebook's code ran "
                     f"(code that kills processes, or more memory than allowed)"}


def _progress(total, enabled):
    from tqdm import tqdm
    return tqdm(total=total, desc="grading", unit="notebook", file=sys.stderr, disable=not enabled)
