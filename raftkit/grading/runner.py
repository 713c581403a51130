"""Grading submissions: processes, limits and the result channel.

Theory of operation
-------------------
Three kinds of process take part; only the last two ever run student code.

``raftkit grade`` (the *parent*)
    starts one *worker* per notebook (``python -m raftkit.grading.runner``,
    at most ``-j`` at a time, each in its own session), and reads the
    worker's verdict from a pipe it created for that worker. It kills a
    worker that overruns the notebook's time limit. It never imports the
    student's code.

the *worker*
    reads the notebook (``nbformat``), picks the code cells to run (all
    of them except those tagged ``raftkit-check`` or ``raftkit-skip``),
    and forks a *loader*. It then asks the loader for one run per
    (scenario, seed), enforces the per-run time limit, scores, and writes
    the verdict on the parent's pipe. The worker itself never executes a
    line of the notebook: it is the only process that can write the
    verdict, and its pipe to the parent is closed in every child right
    after the fork, before any student code runs.

the *loader* (forked from the worker)
    closes the parent's pipe, sends its stdout/stderr to ``/dev/null``
    (so nothing the notebook prints can reach any channel that is read),
    lowers its memory limit (``RLIMIT_AS``) and executes the cells once,
    in an IPython shell (magics work) with file names ``<cell N>``. It
    checks that the expected classes exist with the right methods and
    signatures, then serves run requests: for each it forks a *run* that
    inherits the student's classes, so the cells run once per notebook
    while every (scenario, seed) still gets a fresh process.

a *run* (forked from the loader)
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
student's code never shares a process with the checks or the verdict.

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

import argparse
import contextlib
import faulthandler
import inspect
import io
import json
import linecache
import os
import re
import secrets
import select
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict

from . import battery
from .context import ScenarioContext
from .options import GradeOptions, grader_error, pick_random_seeds, student_of
from .report import describe_error, replay_call, trim_stack_dump

__all__ = ["GradeOptions", "grade_notebooks", "grade_notebook", "grade_in_process", "pick_random_seeds",
           "student_of", "SKIP_TAGS"]

SKIP_TAGS = {"raftkit-check", "raftkit-skip"}
_RESULT_SLACK = 5.0   # seconds a run may overrun its limit (faulthandler first) before it is killed


# ==========================================================================
# The parent: one worker process per notebook
# ==========================================================================

def grade_notebook(path: str, options: GradeOptions, slot: int | None = None) -> dict:
    """Grade one notebook in a fresh worker process. Never raises for a
    bad submission; a result with ``grader_error`` means grading broke.
    ``slot``: the worker's place among those running at once (its clocks
    then get a core of their own, see ``raftkit.clock``)."""
    path = os.path.abspath(path)
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "raftkit.grading.runner", "--result-fd", str(write_fd),
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
        _kill_group(proc.pid)
        err += proc.communicate()[1] or b""
    _kill_group(proc.pid)  # anything left in the worker's session
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
_LIVE_LOCK = __import__("threading").Lock()


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
    _kill_group(pid)


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


def _kill_group(pid):
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


# ==========================================================================
# The worker
# ==========================================================================

class SubmissionError(Exception):
    """The submission cannot be graded (its message is for the student)."""


def read_cells(path: str):
    """The notebook (a dict) and its code cells to run: [(cell number, source)].

    Plain JSON, not nbformat: importing nbformat and its schema validator
    costs more than grading a whole exercise."""
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except FileNotFoundError:
        raise SubmissionError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SubmissionError(f"{name} is not a readable Jupyter notebook ({type(e).__name__}: "
                              f"{str(e).strip()[:200]})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        version = nb.get("nbformat") if isinstance(nb, dict) else None
        if type(version) is int and version < 4:
            raise SubmissionError(f"{name} is a Jupyter notebook of format {nb.get('nbformat')}: open it in "
                                  "Jupyter and save it again (format 4)")
        raise SubmissionError(f"{name} is not a readable Jupyter notebook (no list of cells in it)")
    cells = []
    for number, cell in enumerate(nb["cells"], 1):
        if not isinstance(cell, dict):
            raise SubmissionError(f"{name} is not a readable Jupyter notebook (cell {number} is not an object)")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(s for s in source if isinstance(s, str))
        if not isinstance(source, str):
            raise SubmissionError(f"{name} is not a readable Jupyter notebook (cell {number} has no source text)")
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tags = metadata.get("tags") if isinstance(metadata.get("tags"), list) else []
        if {t for t in tags if isinstance(t, str)} & SKIP_TAGS or source.lstrip().startswith("# raftkit: skip"):
            continue
        cells.append((number, source))
    return nb, cells


def which_exercise(path: str, nb, forced: int | None) -> int:
    if forced is not None:
        if forced not in battery.EXERCISES:
            raise SubmissionError(f"there is no exercise {forced} (exercises are 1-{len(battery.EXERCISES)})")
        return forced
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    meta = meta.get("raftkit") if isinstance(meta.get("raftkit"), dict) else {}
    number = meta.get("exercise")
    if type(number) is int and number in battery.EXERCISES:  # not True, which equals 1
        return number
    m = re.match(r"\D*0*([1-9])\D", os.path.basename(path))
    if m and int(m.group(1)) in battery.EXERCISES:
        return int(m.group(1))
    raise SubmissionError(f"{os.path.basename(path)}: cannot tell which exercise this is (no raftkit "
                          "exercise number in the notebook's metadata, none in its file name); "
                          "pass --exercise N")


def grade_in_worker(path: str, options: GradeOptions) -> dict:
    """Grade one notebook (in the worker process). Returns the result dict."""
    t0 = time.monotonic()
    result = {"notebook": os.path.abspath(path), "student": student_of(path), "exercise": None, "title": "",
              "score": 0, "max": 0, "error": None, "grader_error": None, "warnings": [], "scenarios": []}
    try:
        nb, cells = read_cells(path)
        number = which_exercise(path, nb, options.exercise)
    except SubmissionError as e:
        result["error"] = str(e)
        return result
    ex = battery.EXERCISES[number]
    result.update(exercise=number, title=ex.title, max=ex.max_points)
    scenarios = [s for s in ex.scenarios if not options.only or any(o.lower() in s.name.lower() for o in options.only)]
    if options.only and not scenarios:
        result["error"] = f"no scenario of exercise {number} matches {options.only}"
        return result
    deadline = t0 + options.notebook_timeout
    for cell_number, source in cells:  # so that stack dumps can quote the student's lines
        name = f"<cell {cell_number}>"
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    with tempfile.TemporaryDirectory(prefix="raftkit-grade-") as tmp:
        loader = _Loader(cells, ex, options, tmp, os.path.dirname(os.path.abspath(path)))
        try:
            startup = 40.0 if options.isolation == "process" else 0.0  # a sandboxed template starts first
            loaded = loader.start(min(options.load_timeout + startup, max(1.0, deadline - time.monotonic())))
            result["warnings"] = loaded.get("warnings", [])
            if not loaded.get("ok"):
                result["error"] = loaded.get("error") or "the notebook could not be loaded"
                return result
            for sc in scenarios:
                result["scenarios"].append(_grade_scenario(loader, ex, sc, options, deadline))
        finally:
            loader.stop()
    result["score"] = sum(s["points"] for s in result["scenarios"])
    if options.only:
        result["max"] = sum(s.points for s in scenarios)
    return result


def _grade_scenario(loader, ex, sc, options, deadline) -> dict:
    seeds = list(options.seeds) if options.seeds else list(sc.seeds) + [s for s in options.random_seeds
                                                                          if s not in sc.seeds]
    entry = {"name": sc.name, "points": 0, "max": sc.points, "passed": False, "public": sc.public,
             "message": "", "where": "", "seed": None, "replay": "", "runs": []}
    for seed in seeds:
        left = deadline - time.monotonic()
        if left <= 1.0:
            run = {"seed": seed, "ok": False, "time": 0.0, "error_type": "TimeLimit",
                   "message": f"not run: the notebook's time limit ({options.notebook_timeout:.0f} s) was reached",
                   "where": ""}
        else:
            run = loader.run(sc.name, seed, min(options.scenario_timeout, left))
        entry["runs"].append({k: run.get(k) for k in ("seed", "ok", "time", "error_type", "message")})
        if not run["ok"] and entry["seed"] is None:
            entry.update(seed=seed, message=run["message"], where=run.get("where", ""),
                         replay=replay_call(ex.number, sc.name, seed), events=run.get("events") or [])
            if not options.keep_going:
                break
    entry["passed"] = all(r["ok"] for r in entry["runs"]) and bool(entry["runs"])
    entry["points"] = sc.points if entry["passed"] else 0
    return entry


_CHILD_GROUPS: set = set()  # in the worker: process groups of the loader and of the run in progress


def _on_sigterm(signum, frame):
    for pgid in list(_CHILD_GROUPS):
        _kill_group(pgid)
    os._exit(128 + signum)


class _Loader:
    """The worker's handle on the loader process and its runs."""

    def __init__(self, cells, ex, options, tmp, folder):
        self.cells, self.ex, self.options, self.tmp, self.folder = cells, ex, options, tmp, folder
        self.pid = None
        self.req_w = self.res_r = None
        self.buffer = b""

    # -- worker side -----------------------------------------------------
    def start(self, timeout: float) -> dict:
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # ------------------------------------------- loader
            try:
                os.close(req_w)
                os.close(res_r)
                _loader_main(self.cells, self.ex, self.options, self.tmp, self.folder, req_r, res_w)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(res_w)
        _CHILD_GROUPS.add(pid)
        self.pid, self.req_w, self.res_r = pid, req_w, res_r
        msg = self._expect(lambda m: m.get("type") == "loaded", timeout)
        if msg is None:
            cell, ended = self._last_cell, self.ended
            self.stop()
            where = f" (it was running cell {cell})" if cell else ""
            if ended:
                return {"ok": False, "error": f"the notebook's process ended ({ended}) before its cells "
                                              f"finished{where}: graded cells should only define code"}
            return {"ok": False, "error": f"the notebook's cells did not finish within {timeout:.0f} s{where}: "
                                          "graded cells should only define code (tag experiments raftkit-skip)"}
        return msg

    _last_cell = None
    ended = None  # how the loader ended, if it did (exit status or signal)

    def run(self, name: str, seed: int, timeout: float) -> dict:
        """One (scenario, seed) run in a fresh process; always returns a run dict."""
        t0 = time.monotonic()
        base = {"seed": seed, "ok": False, "time": 0.0, "error_type": "", "message": "", "where": ""}
        if self.pid is None:
            return dict(base, error_type="GraderError", message="the notebook's process is gone")
        nonce = secrets.token_hex(12)
        stack_file = os.path.join(self.tmp, f"stacks-{nonce}.txt")
        request = {"scenario": name, "seed": seed, "nonce": nonce, "timeout": timeout, "stacks": stack_file}
        try:
            os.write(self.req_w, (json.dumps(request) + "\n").encode())
        except OSError:
            return dict(base, error_type="GraderError", message="the notebook's process stopped answering")
        started = self._expect(lambda m: m.get("type") == "started" and m.get("nonce") == nonce, 10.0)
        if started is None:
            self.stop()
            return dict(base, error_type="GraderError", message="could not start a process for this run")
        run_pid = started["pid"]
        _CHILD_GROUPS.add(run_pid)
        result = self._expect(lambda m: m.get("type") in ("result", "exited"), timeout + _RESULT_SLACK)
        if result is None:  # faulthandler did not end it: kill the run's whole process group
            _kill_group(run_pid)
            result = self._expect(lambda m: m.get("type") == "exited", 5.0)
            if result is None:
                self.stop()
        dump = _read(stack_file) or _read(stack_file + ".c")
        if result is not None and result.get("type") == "result":
            if result.get("nonce") != nonce:
                out = dict(base, error_type="Tampered", message="a forged result was written on the grader's "
                                                                "result channel; this run counts as failed")
            else:
                out = {k: result.get(k, base[k]) for k in base}
                out["ok"] = result.get("ok") is True
                out["events"] = event_rows(result.get("events"))
            self._expect(lambda m: m.get("type") == "exited", 5.0)
        elif dump or result is None:  # the time limit: our watchdog, faulthandler, or the kill above
            out = dict(base, error_type="Timeout",
                       message=f"did not finish within {timeout:.0f} s of wall time: an infinite loop, a lock "
                               f"acquired twice, or a thread that never yields"
                               + (" (stacks below)" if dump else ""),
                       where=trim_stack_dump(dump) if dump else "")
        else:  # it ended without a verdict: killed (memory?), or the student's code exited the process
            out = dict(base, error_type="Crash",
                       message=f"the process running your code ended before the scenario finished "
                               f"({result.get('status_text')}): did your code call exit(), or run out of memory?")
        _kill_group(run_pid)
        _CHILD_GROUPS.discard(run_pid)
        out["seed"] = seed
        out["time"] = round(time.monotonic() - t0, 3)
        return out

    def stop(self):
        if self.pid is not None:
            for fd in (self.req_w, self.res_r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _kill_group(self.pid)
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            _CHILD_GROUPS.discard(self.pid)
            self.pid = None

    def _expect(self, want, timeout):
        """Read JSON lines from the loader until one satisfies ``want``."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # not ours: ignored
                if not isinstance(msg, dict):
                    continue
                if msg.get("type") == "cell":
                    self._last_cell = msg.get("cell")
                    continue
                if want(msg):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0 or self.pid is None:
                return None
            ready, _, _ = select.select([self.res_r], [], [], left)
            if not ready:
                return None
            data = os.read(self.res_r, 1 << 16)
            if not data:  # the loader closed its end: it is gone (or closed it itself)
                self.ended = _reap(self.pid)
                self.pid = None
                return None
            self.buffer += data


def _reap(pid, wait: float = 2.0) -> str | None:
    """How child ``pid`` ended ("exit status 0", "killed by SIGKILL ..."),
    waiting at most ``wait`` seconds; None if it still runs (it is then killed)."""
    end = time.monotonic() + wait
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return _status_text(status)
        if time.monotonic() > end:
            _kill_group(pid)
            return None
        time.sleep(0.01)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ==========================================================================
# The loader and its runs (student code runs only here)
# ==========================================================================

def _send(fd, msg):
    data = (json.dumps(msg, default=str) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _isolate(keep):
    """Drop every inherited descriptor but ``keep``; stdout/stderr to /dev/null."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, 1024)
    for fd in fds:
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), write_through=True)


def _limit_memory(mb):
    if not mb:
        return
    import resource
    limit = int(mb) * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _loader_main(cells, ex, options, tmp, folder, req_r, res_w):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the worker's handler is the worker's business
    _isolate({req_r, res_w})
    os.setpgid(0, 0)
    _limit_memory(options.memory_mb)
    import threading
    with contextlib.suppress(ValueError, RuntimeError):
        threading.stack_size(2 * 1024 * 1024)  # many node threads fit under the memory limit
    template = None
    if options.isolation == "process":  # nodes (and exercise 7's clerks) in processes: see grading/isolated.py
        from .isolated import load_isolated
        loaded, impl, template = load_isolated(cells, ex, options, folder, tmp)
        _send(res_w, dict(loaded, type="loaded"))
        if not loaded["ok"]:
            return
    else:
        os.environ["IPYTHONDIR"] = os.path.join(tmp, "ipython")
        _make_shell()  # imported before the notebook's folder joins sys.path (at the end: it shadows nothing)
        with contextlib.suppress(OSError):
            os.chdir(folder)
        sys.path.append(folder)
        loaded = load_cells(cells, ex, progress=lambda n: _send(res_w, {"type": "cell", "cell": n}))
        classes = loaded.pop("classes", None)
        _send(res_w, dict(loaded, type="loaded"))
        if not loaded["ok"]:
            return
        impl = ex.make_impl(*classes)
    reader = os.fdopen(req_r, "rb")
    for line in reader:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # ---------------------------------------------- a run
            try:
                reader.close()
                _run_main(ex, impl, options, request, res_w)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if template is not None:
            template.kill_all()  # no node process of the run outlives it
        _send(res_w, {"type": "exited", "status": status, "status_text": _status_text(status)})


def _status_text(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (out of memory?)" if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT) else ""
        return f"killed by {name}{hint}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _run_main(ex, impl, options, request, res_w):
    os.setpgid(0, 0)
    _send(res_w, {"type": "started", "pid": os.getpid(), "nonce": request["nonce"]})
    timeout = max(1.0, request["timeout"])
    _start_watchdog(timeout, request["stacks"])
    stacks = open(request["stacks"] + ".c", "w")  # if the Python watchdog cannot run (GIL held in C code)
    faulthandler.dump_traceback_later(timeout + 2.0, exit=True, file=stacks)
    sc = ex.scenario(request["scenario"])
    outcome = run_scenario(sc, impl, request["seed"], watchdog=options.watchdog, stop=False)
    faulthandler.cancel_dump_traceback_later()
    for key in ("message", "where"):
        if len(outcome.get(key) or "") > 4000:
            outcome[key] = outcome[key][:4000] + " ..."
    _send(res_w, dict(outcome, type="result", nonce=request["nonce"]))


def _start_watchdog(timeout: float, path: str) -> None:
    """At the time limit, write every thread's stack (with names and code
    lines) to ``path`` and end this process."""
    import threading

    def fire():
        time.sleep(timeout)
        frames = sys._current_frames()
        me = threading.get_ident()
        lines = []
        for t in sorted(threading.enumerate(), key=lambda t: t is not threading.main_thread()):
            frame = frames.get(t.ident)
            if frame is None or t.ident == me:
                continue
            lines.append(f"Thread {t.name}:")
            lines.extend(traceback.format_list(traceback.extract_stack(frame)))
        try:
            with open(path, "w") as f:
                f.write("".join(line if line.endswith("\n") else line + "\n" for line in lines))
        finally:
            os._exit(3)

    threading.Thread(target=fire, name="raftkit-grading-watchdog", daemon=True).start()


def run_scenario(sc, impl, seed: int, *, watchdog: float | None = None, stop: bool = True, keep: bool = False):
    """Run one scenario with one seed in this process. Returns a run dict
    (``ok``, ``error_type``, ``message``, ``where``, ``time``); with
    ``keep=True`` also ``error`` (the exception) and ``context`` (the
    :class:`ScenarioContext`: the clusters made, whether ``rerun`` can repeat them)."""
    ctx = ScenarioContext() if watchdog is None else ScenarioContext(watchdog=watchdog)
    t0 = time.perf_counter()
    error = None
    try:
        sc.run(ctx, impl, seed)
    except (Exception, SystemExit) as e:  # a check, an invariant, the student's exception (or exit())
        error = e
    elapsed = time.perf_counter() - t0
    clusters = ctx.clusters
    if stop:
        ctx.stop()
    out = {"ok": error is None, "seed": seed, "time": round(elapsed, 3), "error_type": "", "message": "",
           "where": ""}
    if error is not None:
        out.update(describe_error(error))
        if clusters:  # for the feedback page's diagram of the moments before the failure
            out["events"] = last_events(clusters[-1])
    if keep:
        out["error"], out["context"] = error, ctx
    return out


FEEDBACK_EVENTS = 60  # events kept from a failing run, for the feedback page


def last_events(cluster, n: int = FEEDBACK_EVENTS) -> list[list]:
    """The cluster's last ``n`` events as plain rows (time, kind, node, peer, detail)."""
    with contextlib.suppress(Exception):  # a cluster broken by the student's code may not answer
        return [[e.time, e.kind, e.node, e.peer, e.detail] for e in cluster.trace[-n:]]
    return []


def event_rows(rows) -> list[list]:
    """Event rows read back from a run's process, checked: at most
    ``FEEDBACK_EVENTS`` rows of (number, str, int|None, int|None, str)."""
    if not isinstance(rows, list):
        return []
    ok = [r for r in rows[-FEEDBACK_EVENTS:]
          if isinstance(r, list) and len(r) == 5 and isinstance(r[0], (int, float)) and isinstance(r[1], str)
          and all(x is None or type(x) is int for x in r[2:4])]
    return [[float(t), k[:40], n, p, str(d)[:300]] for t, k, n, p, d in ok]


# -- executing the notebook's cells ------------------------------------------

def _make_shell():
    try:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
    except ImportError:
        return None
    cfg = Config()
    cfg.HistoryManager.enabled = False
    try:
        return InteractiveShell.instance(config=cfg)
    except Exception:
        return None


def load_cells(cells, ex, progress=None) -> dict:
    """Execute the cells and find the exercise's classes. Returns
    ``{"ok", "error", "warnings", "classes"}``; never raises."""
    shell = _make_shell()
    ns = shell.user_ns if shell is not None else {"__name__": "__main__", "__builtins__": __builtins__}
    warnings = []
    for number, source in cells:
        if progress:
            progress(number)
        filename = f"<cell {number}>"
        try:
            code_text = shell.transform_cell(source) if shell is not None else source
        except Exception:
            code_text = source
        linecache.cache[filename] = (len(code_text), None, code_text.splitlines(True), filename)
        try:
            exec(compile(code_text, filename, "exec"), ns)
        except BaseException as e:  # SystemExit and KeyboardInterrupt too: the next cells still run
            if isinstance(e, SyntaxError) and e.filename == filename:
                warnings.append(f"cell {number} has a syntax error at line {e.lineno}: {e.msg}")
            else:
                tb = describe_error(e)
                where = f" ({tb['where'].splitlines()[0].strip()})" if tb.get("where") else ""
                warnings.append(f"cell {number} raised {type(e).__name__}: {str(e)[:200]}{where}")
    problems, classes = check_classes(ex, ns)
    if problems:
        hint = ("\n" + "\n".join(warnings)) if warnings else ""
        return {"ok": False, "error": "\n".join(problems) + hint, "warnings": warnings}
    return {"ok": True, "error": None, "warnings": warnings, "classes": classes}


def check_classes(ex, ns) -> tuple[list[str], list]:
    """Problems with the student's classes (messages), and the classes."""
    problems, classes = [], []
    for spec in ex.classes:
        base = spec.base
        where = f"raftkit.{base.__name__}" if base.__module__.startswith("raftkit") else base.__name__
        want = f"`class {spec.name}({base.__name__}):` defining {', '.join(spec.methods)}"
        obj = ns.get(spec.name)
        if obj is None:
            problems.append(f"missing class: the notebook defines no {spec.name}; exercise {ex.number} expects "
                            f"{want} (keep the name {spec.name})")
            continue
        if not isinstance(obj, type) or not issubclass(obj, base):
            problems.append(f"{spec.name} must be a class that extends {where} ({want}), "
                            f"got {type(obj).__name__} {obj!r:.80}")
            continue
        for name in spec.methods:
            problem = check_method(obj, spec, name)
            if problem:
                problems.append(problem)
        classes.append(obj)
    return problems, classes


def check_method(cls, spec, name) -> str | None:
    owner = next((k for k in cls.__mro__ if name in vars(k)), None)
    if owner is None or owner.__module__.startswith("raftkit") or owner is spec.base:
        return (f"{spec.name} does not define {name}(): write it in your class (inheriting raftkit's own "
                f"would not be your work, and is not graded)")
    fn = vars(owner)[name]
    reference = getattr(spec.base, name)
    if not inspect.isfunction(fn):
        return f"{spec.name}.{name} must be a plain method (def {name}(self, ...)), got {type(fn).__name__}"
    if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
        return (f"{spec.name}.{name} must be a plain method: it contains `yield` or is `async`, so calling it "
                "would not run its body")
    want, got = inspect.signature(reference), inspect.signature(fn)
    params = [p for p in list(want.parameters.values())[1:] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    least = sum(1 for p in params if p.default is p.empty)
    for count in {least, len(params)}:
        try:
            got.bind(None, *range(count))
        except TypeError:
            return (f"wrong signature: {spec.name}.{name}{got} must accept the same arguments as "
                    f"raftkit's {name}{want}: it is called as {name}({', '.join(p.name for p in params[:count])})")
    return None


# ==========================================================================
# Grading in this process (tests, notebooks): no isolation, no limits
# ==========================================================================

def grade_in_process(exercise: int, *classes, seeds=None, only=None) -> dict:
    """Run an exercise's whole battery on classes of this process (no
    subprocesses, no time limit): a quick way for instructors to try a
    reference or a broken class."""
    ex = battery.EXERCISES[exercise]
    impl = ex.make_impl(*classes)
    result = {"exercise": exercise, "title": ex.title, "max": ex.max_points, "scenarios": []}
    for sc in ex.scenarios:
        if only and not any(o.lower() in sc.name.lower() for o in only):
            continue
        entry = {"name": sc.name, "points": 0, "max": sc.points, "passed": True, "message": "", "where": "",
                 "seed": None, "replay": ""}
        for seed in (seeds or sc.seeds):
            run = run_scenario(sc, impl, seed)
            if not run["ok"]:
                entry.update(passed=False, seed=seed, message=run["message"], where=run["where"],
                             replay=replay_call(exercise, sc.name, seed))
                break
        entry["points"] = sc.points if entry["passed"] else 0
        result["scenarios"].append(entry)
    result["score"] = sum(s["points"] for s in result["scenarios"])
    return result


# ==========================================================================
# Worker entry point: python -m raftkit.grading.runner
# ==========================================================================

def worker_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="raftkit.grading.runner", description="grade one notebook (internal)")
    p.add_argument("--result-fd", type=int, required=True)
    p.add_argument("--options", required=True)
    p.add_argument("notebook")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    out = os.fdopen(args.result_fd, "w")
    try:
        options = GradeOptions(**json.loads(args.options))
        result = grade_in_worker(args.notebook, options)
    except Exception:
        result = grader_error(args.notebook, "the grader failed:\n" + traceback.format_exc())
    out.write(json.dumps(result, default=str))
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
