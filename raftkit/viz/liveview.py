"""The live view's picture: an anywidget that draws state frames as SVG.

The browser side is ``liveview.js`` (a plain ES module, no build step). The
kernel sets ``positions`` (the networkx layout, once) and ``frame`` (one
:func:`raftkit.viz.frames.state_frame` per played frame or click); the
browser animates between frames by itself. Clicks and keys come back as
small messages (see ``liveview.js``), checked by :func:`parse_action` and
handed to ``on_action`` (the ClusterWidget's handler).

>>> from raftkit.viz.liveview import parse_action
>>> parse_action({"action": "crash", "node": 2}, n=5)
('crash', 2)
>>> parse_action({"action": "drop", "message": 17}, n=5)
('drop', 17)
>>> parse_action({"action": "partition", "groups": [[3, 0], [1, 2, 4]]}, n=5)
('partition', [[0, 3], [1, 2, 4]])
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import anywidget
import traitlets

from .frames import positions

__all__ = ["LiveView", "parse_action", "NODE_ACTIONS", "PLAYER_ACTIONS"]

NODE_ACTIONS = ("crash", "restart", "timeout", "disconnect", "connect", "submit")
PLAYER_ACTIONS = ("play", "step", "tick")


def parse_action(content, n: int) -> tuple:
    """Check one message from the browser: ``(action, node)`` for a node
    action, ``("drop", message_id)``, ``("partition", groups)``, or
    ``(action,)`` for play / step / tick. Anything else raises ValueError with what was wrong."""
    if not isinstance(content, dict):
        raise ValueError(f"a live-view message is a dict, got {type(content).__name__}")
    action = content.get("action")
    if action in NODE_ACTIONS:
        node = content.get("node")
        if not isinstance(node, int) or isinstance(node, bool) or not 0 <= node < n:
            raise ValueError(f"{action}: node must be an id in 0..{n - 1}, got {node!r}")
        return action, node
    if action == "drop":
        message = content.get("message")
        if not isinstance(message, int) or isinstance(message, bool) or message < 1:
            raise ValueError(f"drop: message must be a message id (an int >= 1), got {message!r}")
        return action, message
    if action == "partition":
        groups = content.get("groups")
        ok = isinstance(groups, list) and groups and all(isinstance(g, list) and g for g in groups)
        ids = [i for g in groups for i in g] if ok else []
        if not ok or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in ids):
            raise ValueError(f"partition: groups must be non-empty lists of node ids in 0..{n - 1}, got {groups!r}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"partition: a node is in two groups: {groups!r}")
        return action, [sorted(g) for g in groups]
    if action in PLAYER_ACTIONS:
        return (action,)
    known = ", ".join(NODE_ACTIONS + ("drop", "partition") + PLAYER_ACTIONS)
    raise ValueError(f"unknown live-view action {action!r}; expected one of {known}")


class LiveView(anywidget.AnyWidget):
    """The SVG picture of a cluster (see the module doc). ``on_action(action,
    *args)`` is called with each checked click or key; ``on_error(message)``
    with what was wrong with a bad message."""

    _esm = pathlib.Path(__file__).with_name("liveview.js")
    positions = traitlets.List().tag(sync=True)
    frame = traitlets.Dict().tag(sync=True)

    def __init__(self, n: int, on_action: Callable | None = None, on_error: Callable | None = None, **kw):
        super().__init__(positions=positions(n), **kw)
        self.n = n
        self.on_action = on_action
        self.on_error = on_error
        self.on_msg(self._receive)

    def _receive(self, _widget, content, _buffers=None):
        try:
            action = parse_action(content, self.n)
        except ValueError as e:
            if self.on_error is not None:
                self.on_error(str(e))
            return
        if self.on_action is not None:
            self.on_action(*action)

    def resize(self, n: int) -> None:
        """A cluster of another size (after a reset): new positions."""
        self.n = n
        self.positions = positions(n)
