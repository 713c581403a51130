"""A notebook's worker: ``python -m raftkit.grading.worker``.

It reads the notebook, forks the loader (``grading/loader.py``), asks it for
one run per (scenario, seed), enforces the time limits, accepts a run's
verdict only with that request's nonce, scores, and writes the notebook's
result on the parent's pipe. It never executes a line of the notebook."""

from __future__ import annotations

import argparse
import contextlib
import json
import linecache
import os
import secrets
import select
import signal
import sys
import tempfile
import time
import traceback

from . import battery
from .loader import loader_main
from .notebook import SubmissionError, read_cells, which_exercise
from .options import GradeOptions, grader_error, student_of
from .procs import kill_group, status_text
from .report import replay_call, trim_stack_dump
from .runs import event_rows

__all__ = ["grade_in_worker", "worker_main"]

_RESULT_SLACK = 5.0   # seconds a run may overrun its limit (faulthandler first) before it is killed


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
        kill_group(pgid)
    os._exit(128 + signum)


class _Loader:
    """The worker's handle on the loader process and its runs."""

    def __init__(self, cells, ex, options, tmp, folder):
        self.cells, self.ex, self.options, self.tmp, self.folder = cells, ex, options, tmp, folder
        self.pid = self.runner = None
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
                loader_main(self.cells, self.ex, self.options, self.tmp, self.folder, req_r, res_w)
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
        """One (scenario, seed) run in a fresh process (with every node in a
        process of its own: in the runner, ``loader._serve_runner``, which
        goes on to the next run); always returns a run dict."""
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
            kill_group(run_pid)
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
            if self.options.isolation == "process" and out["error_type"] != "Tampered":
                self.runner = run_pid
                out.update(seed=seed, time=round(time.monotonic() - t0, 3))
                return out  # its runner goes on to the next request
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
        kill_group(run_pid)
        _CHILD_GROUPS.discard(run_pid)
        if self.runner == run_pid:
            self.runner = None
        out["seed"] = seed
        out["time"] = round(time.monotonic() - t0, 3)
        return out

    def stop(self):
        if self.pid is not None:
            for fd in (self.req_w, self.res_r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            kill_group(self.pid)
            if self.runner is not None:
                kill_group(self.runner)
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
            return status_text(status)
        if time.monotonic() > end:
            kill_group(pid)
            return None
        time.sleep(0.01)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def worker_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="raftkit.grading.worker", description="grade one notebook (internal)")
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
