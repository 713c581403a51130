"""A real browser test of the live cluster widget.

Starts JupyterLab headless on a free port, opens ``tests/browser_demo.ipynb``
in Debian's Chromium through Playwright, runs it, and checks the SVG live
view: Step moves the picture, clicking a message drops it, clicking a node
and Crash in its menu crashes it (picture, status line and node table), Play
animates the picture between kernel frames (the animation frame rate is
measured and printed), and the space key pauses. A screenshot of the widget is saved to
``test-artifacts/browser-widget.png`` (git-ignored).

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package; ``.ci/run``
installs it) and the ``playwright`` Python package (the ``test`` extra). Only
the Python package is used: Playwright's own browser download is never
needed. Without either the test is skipped with a message saying how to
enable it.

Everything is bounded: each wait polls a condition with a deadline, and the
browser, the server and its kernels are shut down in ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.slow  # JupyterLab in a real browser

ROOT = os.path.dirname(HERE)
DEMO = os.path.join(HERE, "browser_demo.ipynb")
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
SCREENSHOT = os.path.join(ARTIFACTS, "browser-widget.png")
FAILURE_SCREENSHOT = os.path.join(ARTIFACTS, "browser-widget-failure.png")

CHROMIUM = "/usr/bin/chromium"
# What is known to work for Debian's Chromium on these machines: no GPU, and
# no background traffic to Google (the network is closed; Chromium would
# otherwise retry refused connections all the time).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_MESSAGE = (f"Chromium not found at {CHROMIUM}: install it with `apt-get install chromium` "
                "(CI does this in .ci/run) to run the browser test")

SERVER_START_TIMEOUT = 60.0   # s until JupyterLab answers HTTP
UI_TIMEOUT_MS = 60_000        # ms for the page, the kernel and the first render
CHANGE_TIMEOUT = 20.0         # s for the picture to change after a click

# Lab settings for the throwaway config dir: no news / update checks (they
# pop up notifications and try to reach the internet).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


def _chromium_and_playwright():
    if not os.path.exists(CHROMIUM):
        pytest.skip(SKIP_MESSAGE)
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.skip(SKIP_MESSAGE + " (and the Python package playwright: `pip install -e '.[test]'`; "
                    "its browser download is not needed)")
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: `pip install -e '.[lab,test]'`")
    pytest.importorskip("ipywidgets", reason="ipywidgets is not installed: `pip install -e '.[lab,test]'`")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class _Lab:
    """A JupyterLab server in its own process group, with throwaway Jupyter dirs."""

    def __init__(self, root: str, home: str):
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(home, "jupyterlab.log")
        env = dict(os.environ)
        # Keep the user's settings, workspaces and runtime files out of it.
        # The venv's kernelspec and lab extensions (ipywidgets' manager) are
        # still found through sys.prefix/share/jupyter.
        for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                          ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
            env[name] = os.path.join(home, sub)
            os.makedirs(env[name], exist_ok=True)
        env.pop("JUPYTERLAB_SETTINGS_DIR", None)
        env.pop("JUPYTERLAB_WORKSPACES_DIR", None)
        env["PYTHONUNBUFFERED"] = "1"
        settings = os.path.join(env["JUPYTER_CONFIG_DIR"], "lab", "user-settings")
        for rel, value in LAB_SETTINGS.items():
            path = os.path.join(settings, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(value, f)
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=", "--ServerApp.open_browser=False"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no server log)"

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited with code {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float):
        try:
            _wait_until(self._answers, timeout, f"jupyter lab to answer on port {self.port}", interval=0.2)
        except AssertionError as e:
            raise AssertionError(f"{e}\nserver log:\n{self.log_tail()}") from None

    def stop(self):
        """Shut the server and its kernels down (kernels run in sessions of
        their own, so killing the server's process group is not enough)."""
        try:
            import psutil
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except Exception:
            psutil, children = None, []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # jupyter shuts its kernels down on SIGTERM
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if psutil is not None:
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            psutil.wait_procs(children, timeout=5)
        self._log.close()


@pytest.mark.timeout(180)
def test_widget_in_real_browser(tmp_path):
    _chromium_and_playwright()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(DEMO, root / "browser_demo.ipynb")
    os.makedirs(ARTIFACTS, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(FAILURE_SCREENSHOT)

    console: list[str] = []   # browser console errors/warnings and page errors
    t0 = time.monotonic()
    phases: list[str] = []    # how long each part took (printed; in the failure report)

    def mark(what: str):
        phases.append(f"{time.monotonic() - t0:6.1f}s  {what}")

    def report(msg: str) -> str:
        errors = "\n".join(console[-40:]) or "(none)"
        return (f"{msg}\nphases:\n" + "\n".join(phases) + f"\nbrowser console errors:\n{errors}"
                f"\nserver log (tail):\n{lab.log_tail(25)}")

    lab = _Lab(str(root), str(tmp_path))
    try:
        lab.wait_ready(SERVER_START_TIMEOUT)
        mark("jupyter lab answers")
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),  # a new, empty profile
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1366, "height": 1400}, timeout=60_000)  # a laptop's width
            mark("chromium started")
            try:
                page = context.new_page()
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.on("console", lambda m: console.append(f"[{m.type}] {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))

                page.goto(f"{lab.url}/lab/tree/browser_demo.ipynb?token={lab.token}",
                          wait_until="domcontentloaded")
                try:
                    _drive(page, mark)
                except (AssertionError, PlaywrightError) as e:
                    with contextlib.suppress(Exception):
                        page.screenshot(path=FAILURE_SCREENSHOT)
                    raise AssertionError(report(f"{type(e).__name__}: {e}\n"
                                                f"(page screenshot: {FAILURE_SCREENSHOT})")) from e
            finally:
                with contextlib.suppress(Exception):
                    context.close()
    finally:
        lab.stop()
    mark("browser and server stopped")
    print("phases:\n" + "\n".join(phases))
    if console:
        print("browser console errors/warnings (not failures):\n" + "\n".join(console))


def _drive(page, mark):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # The notebook opens and its kernel (the venv's python3) becomes idle.
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    # (The toolbar's execution indicator already says "idle" while there is no
    # kernel yet; the status bar names the kernel once it is connected.)
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\(ipykernel\) \| Idle")).wait_for()
    mark("notebook open, kernel idle")

    # Run > Run All Cells.
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()

    cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
    out = cells.nth(0).locator(".jp-OutputArea-output")
    step = out.get_by_role("button", name="Step", exact=True)
    play = out.locator("button.widget-toggle-button", has_text=re.compile(r"Play|Pause"))
    view = out.locator(".raftkit-liveview")
    status = out.locator(".raftkit-status")
    try:
        step.wait_for(state="visible")
    except PlaywrightTimeout:
        shown = out.all_inner_texts()
        hint = (" (the output is the widget's text repr: the ipywidgets lab extension did not load)"
                if any("ClusterWidget(" in t for t in shown) else "")
        raise AssertionError(f"the widget's Step button never showed{hint}; cell output: {shown!r}") from None
    view.wait_for(state="visible")
    nodes = view.locator("g.rk-node")
    _wait_until(lambda: nodes.count() == 5, CHANGE_TIMEOUT, "the SVG view to draw 5 nodes")
    mark("widget rendered")
    assert view.locator("g.rk-node.rk-Leader").count() == 1, "seed 1 has one leader at t=1"

    def shown_time():
        return float(view.get_attribute("data-time") or "nan")

    def title():
        return view.locator("text.rk-title").text_content()

    # The widget fits a laptop screen: measured at the browser's width of 1366 px.
    widget = out.filter(has=page.get_by_role("button", name="Step", exact=True)).first
    height = widget.evaluate("el => el.getBoundingClientRect().height")
    print(f"widget height at 1366 px wide: {height:.0f} px")
    assert height < 640, f"the widget is {height:.0f} px tall: it does not fit 1366x768 with JupyterLab around it"

    # Step: each click goes to the next visible event and the picture follows.
    t0, title0 = shown_time(), title()
    for i in range(3):
        before = shown_time()
        step.click()
        _wait_until(lambda: shown_time() > before, CHANGE_TIMEOUT,
                    f"the picture's time to move after Step click {i + 1}")
    assert shown_time() > t0 and title() != title0
    mark("3 steps drawn")

    # A message in flight: click it to drop it.
    msgs = view.locator("g.rk-message")
    for _ in range(20):
        if msgs.count():
            break
        before = shown_time()
        step.click()
        _wait_until(lambda: shown_time() > before, CHANGE_TIMEOUT, "the picture to move after Step")
    assert msgs.count() > 0, "no message in flight after 20 steps"
    ident = msgs.first.get_attribute("data-message")
    msgs.first.locator("circle").click(force=True)
    _wait_until(lambda: f"message {ident} dropped" in status.inner_text(), CHANGE_TIMEOUT,
                f"the status line to say message {ident} was dropped")
    _wait_until(lambda: view.locator(f'g.rk-message[data-message="{ident}"]').count() == 0, CHANGE_TIMEOUT,
                "the dropped message to leave the picture")
    mark("message dropped by a click")

    # Click node 2, then Crash in its menu.
    nodes.nth(2).locator("circle").nth(1).click(force=True)
    menu = view.locator(".rk-menu")
    menu.wait_for(state="visible")
    menu.locator("button.rk-crash").click()
    _wait_until(lambda: "rk-Dead" in (view.locator('g.rk-node[data-node="2"]').get_attribute("class") or ""),
                CHANGE_TIMEOUT, "node 2 to be drawn crashed after the click")
    _wait_until(lambda: "node 2 crashed" in status.inner_text(), CHANGE_TIMEOUT, "the status line to say so")
    assert view.locator("g.rk-node.rk-Dead").count() == 1  # only node 2 went down
    out.get_by_text("nodes and events", exact=True).click()   # unfold the table (an accordion title)
    table = out.locator("pre", has_text="Cluster(n=5")
    _wait_until(lambda: re.search(r"^\s*2\s+crashed\b.*-$", table.inner_text(), re.M), CHANGE_TIMEOUT,
                "the node table to show node 2 crashed")
    mark("crash by a click drawn")

    # Drag a box around node 0: it and the others become two partition groups.
    bb = nodes.nth(0).bounding_box()
    page.mouse.move(bb["x"] - 4, bb["y"] - 4)
    page.mouse.down()
    page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2, steps=4)
    page.mouse.move(bb["x"] + bb["width"] + 4, bb["y"] + bb["height"] + 4, steps=4)
    page.mouse.up()
    _wait_until(lambda: "partitioned: 0 | 1 2 3 4" in status.inner_text(), CHANGE_TIMEOUT,
                "the status line to say the drag partitioned node 0 off")
    _wait_until(lambda: view.locator("line.rk-cut").count() == 4, CHANGE_TIMEOUT, "node 0's 4 links drawn cut")
    mark("partition by a drag drawn")

    # Play: the display time moves at the display's frame rate, messages glide.
    play.click()
    _wait_until(lambda: view.evaluate("el => el.rk.animated") > 30, CHANGE_TIMEOUT, "the view to animate")
    stats = view.evaluate("""el => new Promise(done => {
        const t0 = performance.now(), a0 = el.rk.animated, f0 = el.rk.frames;
        const times = new Set();
        const sample = () => {
            times.add(el.dataset.time);
            if (performance.now() - t0 < 2000) requestAnimationFrame(sample);
            else done({fps: (el.rk.animated - a0) / 2, kernel_fps: (el.rk.frames - f0) / 2,
                       distinct: times.size});
        };
        requestAnimationFrame(sample);
    })""")
    print(f"while playing: {stats['fps']:.0f} animation frames/s, {stats['kernel_fps']:.1f} kernel frames/s, "
          f"{stats['distinct']} distinct display times in 2 s")
    assert stats["distinct"] > 2 * stats["kernel_fps"], f"the view only moves when the kernel sends: {stats}"
    # Space pauses (the view has focus), space plays again, space pauses.
    view.focus()
    page.keyboard.press("Space")
    _wait_until(lambda: play.inner_text().strip() == "Play", CHANGE_TIMEOUT, "space to pause")
    mark(f"played: {stats}")

    widget.scroll_into_view_if_needed()
    widget.screenshot(path=SCREENSHOT)
    assert os.path.getsize(SCREENSHOT) > 10_000

    # The second view: 9 nodes, about 20 messages in flight. Play it and count.
    out9 = cells.nth(1).locator(".jp-OutputArea-output")
    view9 = out9.locator(".raftkit-liveview")
    view9.wait_for(state="visible")
    _wait_until(lambda: view9.locator("g.rk-node").count() == 9, CHANGE_TIMEOUT, "the 9-node view")
    view9.scroll_into_view_if_needed()
    out9.locator("button.widget-toggle-button", has_text="Play").click()
    _wait_until(lambda: view9.evaluate("el => el.rk.animated") > 30, CHANGE_TIMEOUT, "the 9-node view to animate")
    stats9 = view9.evaluate("""el => new Promise(done => {
        const t0 = performance.now(), a0 = el.rk.animated, f0 = el.rk.frames;
        let dots = 0, samples = 0;
        const sample = () => {
            dots += el.querySelectorAll("g.rk-message").length; samples += 1;
            if (performance.now() - t0 < 3000) requestAnimationFrame(sample);
            else done({fps: (el.rk.animated - a0) / 3, kernel_fps: (el.rk.frames - f0) / 3,
                       messages: dots / samples});
        };
        requestAnimationFrame(sample);
    })""")
    print(f"9 nodes playing: {stats9['fps']:.0f} animation frames/s, {stats9['kernel_fps']:.1f} kernel "
          f"frames/s, {stats9['messages']:.1f} messages drawn on average")
    assert stats9["messages"] > 5, f"the 9-node view drew almost no messages: {stats9}"
    out9.locator("button.widget-toggle-button", has_text="Pause").click()
    view9.screenshot(path=os.path.join(ARTIFACTS, "browser-widget-9-nodes.png"))
    mark(f"9 nodes played: {stats9}")
