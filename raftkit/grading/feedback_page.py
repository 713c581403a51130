"""A feedback page per student: one HTML file, no server, no network.

For each exercise the student handed in: the score, a row per scenario
(points, pass or fail), and for a failure the message, where in the
student's code it happened, the line that replays it, and, when the grader
kept the run's last events (``events`` on the scenario: ``[time, kind,
node, peer, detail]`` rows), a space-time diagram of them (the same
``raftkit.viz.timeline`` the notebooks draw), inlined as SVG.

    raftkit grade submitted/ --feedback feedback/     # feedback/<student>.html
"""

from __future__ import annotations

import html
import io
import os
import re

__all__ = ["feedback_page", "write_feedback_pages"]

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; width: 100%; }
td, th { border-bottom: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
.pass { color: #1a7f37; } .fail { color: #cf222e; font-weight: 600; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
.replay { font-family: ui-monospace, monospace; background: #fff8c5; padding: .1em .3em; }
figure { margin: .5em 0; } svg { max-width: 100%; height: auto; }
"""


def feedback_page(student: str, results: list[dict]) -> str:
    """The page for one student's results (the dicts `raftkit grade` writes)."""
    total = sum(r.get("score", 0) for r in results)
    most = sum(r.get("max", 0) for r in results)
    body = [f"<h1>Raft exercises: {_e(student)}</h1>", f"<p>Total: <b>{total}/{most}</b> points.</p>"]
    for r in sorted(results, key=lambda r: r.get("exercise") or 99):
        body.append(_exercise(r))
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>raftkit feedback: {_e(student)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def write_feedback_pages(results: list[dict], folder: str) -> list[str]:
    """One page per student in ``folder``; returns the paths written."""
    os.makedirs(folder, exist_ok=True)
    by_student: dict[str, list] = {}
    for r in results:
        by_student.setdefault(r.get("student") or "?", []).append(r)
    written = []
    for student, rs in sorted(by_student.items()):
        path = os.path.join(folder, _file_name(student) + ".html")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(feedback_page(student, rs))
        os.replace(tmp, path)
        written.append(path)
    return written


def _exercise(r: dict) -> str:
    title = f"Exercise {r.get('exercise') or '?'}: {r.get('title', '')}"
    out = [f"<h2>{_e(title)} &mdash; {r.get('score', 0)}/{r.get('max', 0)}</h2>"]
    if r.get("notebook"):
        out.append(f"<p>Notebook: <code>{_e(os.path.basename(r['notebook']))}</code></p>")
    if r.get("grader_error"):
        out.append(f"<p class='fail'>The grader could not grade this notebook; your instructor has been told: "
                   f"{_e(r['grader_error'])}</p>")
    elif r.get("error"):
        out.append(f"<p class='fail'>0 points:</p><pre>{_e(r['error'])}</pre>")
    for w in r.get("warnings") or []:
        out.append(f"<p>Warning: {_e(w)}</p>")
    scenarios = r.get("scenarios") or []
    if scenarios:
        rows = "".join(_scenario_row(s) for s in scenarios)
        out.append(f"<table><tr><th>scenario</th><th>points</th><th>result</th></tr>{rows}</table>")
        out.extend(_failure(s) for s in scenarios if not s.get("passed"))
    return "".join(out)


def _scenario_row(s: dict) -> str:
    verdict = "<span class='pass'>passed</span>" if s.get("passed") else "<span class='fail'>failed</span>"
    return f"<tr><td>{_e(s['name'])}</td><td>{s.get('points', 0)}/{s.get('max', 0)}</td><td>{verdict}</td></tr>"


def _failure(s: dict) -> str:
    out = [f"<h3>{_e(s['name'])}</h3>"]
    if s.get("seed") is not None:
        out.append(f"<p>Failed with seed {s['seed']}.</p>")
    if s.get("message"):
        out.append(f"<pre>{_e(s['message'])}</pre>")
    where = s.get("where")
    if where:
        out.append(f"<p>Where:</p><pre>{_e(where if isinstance(where, str) else chr(10).join(where))}</pre>")
    if s.get("replay"):
        out.append(f"<p>Replay it in your notebook, then step through it in the live view: "
                   f"<span class='replay'>{_e(s['replay'])}</span></p>")
    if s.get("events"):
        out.append(_diagram(s["events"]))
    return "".join(out)


def _diagram(rows) -> str:
    """The run's last events as an inline SVG space-time diagram."""
    from ..trace import Event
    from ..viz.timeline import timeline
    try:
        events = [Event(float(t), str(kind), node, peer, str(detail)) for t, kind, node, peer, detail in rows]
        fig = timeline(events)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    except (TypeError, ValueError) as e:  # events come from the run: never let them break the page
        return f"<p>(no diagram: the run's events could not be drawn: {_e(str(e))})</p>"
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    return f"<figure>{svg}<figcaption>The last events before the failure.</figcaption></figure>"


def _file_name(student: str) -> str:
    return re.sub(r"[^\w.-]+", "_", student).strip("._") or "student"


def _e(text) -> str:
    return html.escape(str(text))
