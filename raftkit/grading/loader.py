"""The loader process and its runs (student code runs only below here).

The loader is forked by the worker (``grading/worker.py``): it drops every
inherited descriptor but its two pipes, caps its memory, and loads the
student's classes, in a sandboxed template process (``grading/isolated.py``)
or, with ``isolation="none"``, by executing the cells itself. It then forks
one *run* per request: one scenario with one seed, under a time limit that
dumps every thread's stack, whose verdict goes back as one JSON line. With
the nodes isolated, a run executes only the kit's code, and one *runner*
makes every run of the notebook in turn (``_serve_runner``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import io
import json
import os
import signal
import sys
import threading
import traceback

from .cells import load_cells, make_shell
from .procs import limit_memory, status_text
from .runs import run_scenario

__all__ = ["loader_main"]


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


def loader_main(cells, ex, options, tmp, folder, req_r, res_w):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the worker's handler is the worker's business
    _isolate({req_r, res_w})
    os.setpgid(0, 0)
    limit_memory(options.memory_mb)
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
        make_shell()  # imported before the notebook's folder joins sys.path (at the end: it shadows nothing)
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
    gc.freeze()  # what is loaded stays shared with every run: their collections do not touch (copy) it
    if template is not None:
        _serve_runner(ex, impl, options, reader, res_w, template)
        return
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
        _send(res_w, {"type": "exited", "status": status, "status_text": status_text(status)})


_REQUESTS_ENDED = 64  # a runner's exit status: the worker sent its last request
_TEARDOWN_FAILED = 65  # ... its clusters did not stop within _TEARDOWN seconds (the next run gets a new runner)
_TEARDOWN = 5.0        # well within the worker's wait for a run to start


def _serve_runner(ex, impl, options, reader, res_w, template):
    """With every node in a process of its own, a run executes only the
    kit's code: one *runner* process makes run after run, so that each run
    does not pay for a fresh process (its fork, and its copies of the pages
    it writes). A runner that ends otherwise (a run past its time limit, killed
    by the worker) is reported as such, and the next request gets a new one."""
    while True:
        pid = os.fork()
        if pid == 0:  # ------------------------------------------- a runner
            code = 70
            try:
                for line in reader:
                    _run_main(ex, impl, options, json.loads(line), res_w, template)
                code = _REQUESTS_ENDED
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        template.kill_all()  # no node process of its runs outlives it
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _REQUESTS_ENDED:
            return
        _send(res_w, {"type": "exited", "status": status, "status_text": status_text(status)})


def _run_main(ex, impl, options, request, res_w, template=None):
    """One run: in a process of its own, or in the runner (``template``),
    which then stops the run's clusters (a runner that cannot within
    ``_TEARDOWN`` seconds ends: the next run gets a new one) and goes on."""
    os.setpgid(0, 0)
    _send(res_w, {"type": "started", "pid": os.getpid(), "nonce": request["nonce"]})
    timeout = max(1.0, request["timeout"])
    watchdog = _start_watchdog(timeout, request["stacks"])
    with open(request["stacks"] + ".c", "w") as stacks:  # if the Python watchdog cannot run (GIL held in C code)
        faulthandler.dump_traceback_later(timeout + 2.0, exit=True, file=stacks)
        sc = ex.scenario(request["scenario"])
        outcome = run_scenario(sc, impl, request["seed"], watchdog=options.watchdog, stop=False,
                               keep=template is not None)
        faulthandler.cancel_dump_traceback_later()
    ctx = outcome.pop("context", None)
    outcome.pop("error", None)
    for key in ("message", "where"):
        if len(outcome.get(key) or "") > 4000:
            outcome[key] = outcome[key][:4000] + " ..."
    watchdog.cancel()
    _send(res_w, dict(outcome, type="result", nonce=request["nonce"]))
    if ctx is not None:  # the runner: stop the run's clusters before the next run, or make way for a new runner
        limit = threading.Timer(_TEARDOWN, os._exit, (_TEARDOWN_FAILED,))
        limit.daemon = True
        limit.start()
        ctx.stop()
        template.kill_all()  # the next run starts with no node of this one left
        limit.cancel()


def _start_watchdog(timeout: float, path: str):
    """At the time limit, write every thread's stack (with names and code
    lines) to ``path`` and end this process; unless the returned timer is
    cancelled first."""
    def fire():
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

    timer = threading.Timer(timeout, fire)
    timer.name, timer.daemon = "raftkit-grading-watchdog", True
    timer.start()
    return timer
