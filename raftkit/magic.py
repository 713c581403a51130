"""The ``%raft`` line magic: drive a cluster from IPython in one line.

Load it with ``%load_ext raftkit`` (or ``raftkit.magic.load_ipython_extension(ip)``).
``%raft?`` shows the usage below. Nothing here ever prints a traceback for
bad input: it prints one line saying what was expected.
"""

from __future__ import annotations

from typing import Any

from .errors import RaftkitError

__all__ = ["load_ipython_extension", "RaftMagic", "USAGE", "DEMO_SEED"]

DEMO_SEED = 1    # %raft demo uses a fixed seed: every class sees the same run
DEMO_SIZE = 5

USAGE = ("usage: %raft demo [N [SEED]] | show | state | step [K] | run SECONDS | crash I | restart I"
         " | partition 0 1 | 2 3 4 | heal | submit CMD   (%raft? for help)")

DOC = """Drive a raftkit cluster from one line. The cluster is the variable
``cluster`` in your namespace (``%raft demo`` makes one).

  %raft demo [N [SEED]]     a new N-node virtual cluster (default 5 nodes, seed 1),
                            stored as `cluster`, and its live widget
  %raft show                the live widget for `cluster`
  %raft state               print the cluster's state table
  %raft step [K]            run K scheduler events (default 1) and print them
  %raft run SECONDS         let the cluster run for SECONDS of cluster time
  %raft crash I             crash node I
  %raft restart I           restart node I from its persisted state
  %raft partition 0 1 | 2 3 4
                            links only inside each group (nodes in no group are isolated)
  %raft heal                no partition, every node connected
  %raft submit CMD          submit the command CMD (text) to the current leader

While a widget shows `cluster`, the commands go through the widget (so they
never race its play thread) and it redraws; rewinding or resetting in the
widget rebinds `cluster` to the cluster it now shows.

Examples::

  %load_ext raftkit
  %raft demo 5
  %raft run 1
  %raft crash 0
  %raft state
"""


class _UsageError(ValueError):
    pass


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise _UsageError(f"{what} must be an integer, got {text!r}") from None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class RaftMagic:
    """The state behind ``%raft`` for one IPython shell: the widget it showed."""

    def __init__(self, shell):
        self.shell = shell
        self.widget = None        # the ClusterWidget shown last
        self.demo_cluster = None  # the cluster %raft demo made (stopped by the next demo)
        self.demo_widget = None   # its widget: the clusters it shows are the demo's too

    # -------------------------------------------------------------- entry
    def __call__(self, line: str) -> None:
        words = (line or "").split(None, 1)
        if not words:
            print(USAGE)
            return
        command, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
        handler = getattr(self, f"do_{command}", None)
        if handler is None:
            print(f"%raft: unknown command {command!r}. {USAGE}")
            return
        try:
            handler(rest)
        except _UsageError as e:
            print(f"%raft {command}: {e}. {USAGE}")
        except (RaftkitError, ValueError, TypeError, RuntimeError, KeyError) as e:
            print(f"%raft {command}: {_one_line(e)}")

    # ------------------------------------------------------------ helpers
    @property
    def ns(self) -> dict:
        return self.shell.user_ns

    def _cluster(self):
        from .cluster import Cluster
        c = self.ns.get("cluster")
        if not isinstance(c, Cluster):
            raise _UsageError("no raftkit.Cluster named `cluster` here: run `%raft demo 5` "
                              "or `cluster = raftkit.Cluster(...)` first")
        return c

    def _live_widget(self, c):
        w = self.widget
        if w is not None and not w.closed and w.cluster is c:
            return w
        return None

    def _run(self, fn, action=False) -> Any:
        """Call ``fn(cluster)``, through the widget when one shows it."""
        c = self._cluster()
        w = self._live_widget(c)
        return fn(c) if w is None else w.call(fn, action=action)

    def _show(self, c):
        from .viz.widget import show
        if self._live_widget(c) is None:
            if self.widget is not None:
                self.widget.close()
            self.widget = show(c)
            self.widget.on_cluster_change = self._rebind
        _display(self.widget)

    def _rebind(self, old, new):
        if self.ns.get("cluster") is old:
            self.ns["cluster"] = new

    @staticmethod
    def _no_args(rest):
        if rest:
            raise _UsageError(f"expected no arguments, got {rest!r}")

    # ----------------------------------------------------------- commands
    def do_demo(self, rest):
        from .cluster import MAX_NODES, Cluster
        args = rest.split()
        if len(args) > 2:
            raise _UsageError(f"expected `%raft demo [N [SEED]]`, got {rest!r}")
        n = _int(args[0], "N") if args else DEMO_SIZE
        seed = _int(args[1], "SEED") if len(args) > 1 else DEMO_SEED
        if not 1 <= n <= MAX_NODES:
            raise _UsageError(f"N must be between 1 and {MAX_NODES}, got {n}")
        self.close()
        c = Cluster(n, seed=seed)
        self.demo_cluster = c
        self.ns["cluster"] = c
        self._show(c)
        self.demo_widget = self.widget

    def close(self):
        """Close the widget; stop the clusters that %raft demo made."""
        w, demo = self.widget, self.demo_widget
        self.widget = self.demo_widget = None
        if w is not None:
            w.close()
        if demo is not None:
            demo.close()
            demo.cluster.stop()
        if self.demo_cluster is not None:
            self.demo_cluster.stop()
            self.demo_cluster = None

    def do_show(self, rest):
        self._no_args(rest)
        self._show(self._cluster())

    def do_state(self, rest):
        self._no_args(rest)
        print(self._run(repr))

    def do_step(self, rest):
        args = rest.split()
        if len(args) > 1:
            raise _UsageError(f"expected `%raft step [K]`, got {rest!r}")
        k = _int(args[0], "K") if args else 1
        if k < 1:
            raise _UsageError(f"K must be >= 1, got {k}")

        def steps(c):
            out = []
            for _ in range(k):
                event = c.step()
                out.append(event)
                if event is None:
                    break
            return out
        c = self._cluster()
        w = self._live_widget(c)
        for event in (steps(c) if w is None else w.step(k)):
            print("nothing pending" if event is None else event)

    def do_run(self, rest):
        args = rest.split()
        if len(args) != 1:
            raise _UsageError(f"expected `%raft run SECONDS`, got {rest!r}")
        try:
            seconds = float(args[0])
        except ValueError:
            raise _UsageError(f"SECONDS must be a number, got {args[0]!r}") from None
        if not seconds >= 0:
            raise _UsageError(f"SECONDS must be >= 0, got {args[0]}")
        c = self._cluster()
        w = self._live_widget(c)
        if w is None:
            c.run_for(seconds)
        else:
            w.advance(seconds)
            c = w.cluster
        leader = c.leader()
        print(f"t={c.now:.3f}s, " + ("no leader" if leader is None
                                      else f"leader {leader} (term {c.get_state(leader)[0]})"))

    def _node(self, rest, method, done):
        args = rest.split()
        if len(args) != 1:
            raise _UsageError(f"expected `%raft {method} I`, got {rest!r}")
        i = _int(args[0], "I")
        self._run(lambda c: getattr(c, method)(i), action=True)
        print(f"node {i} {done}")

    def do_crash(self, rest):
        self._node(rest, "crash", "crashed")

    def do_restart(self, rest):
        self._node(rest, "restart", "restarted")

    def do_partition(self, rest):
        from .viz.widget import parse_groups
        try:
            groups = parse_groups(rest)
        except ValueError as e:
            raise _UsageError(str(e)) from None
        self._run(lambda c: c.partition(*groups), action=True)
        print("partitioned: " + " | ".join(" ".join(map(str, g)) for g in groups))

    def do_heal(self, rest):
        self._no_args(rest)
        self._run(lambda c: c.heal(), action=True)
        print("healed")

    def do_submit(self, rest):
        if not rest:
            raise _UsageError("expected `%raft submit CMD`")
        index, term, ok = self._run(lambda c: c.submit(rest), action=True)
        print(f"submitted {rest!r}: index {index}, term {term}" if ok
              else f"not accepted: no leader right now (term {term})")


def _display(obj):
    from IPython.display import display
    display(obj)


def load_ipython_extension(ipython) -> None:
    """Register ``%raft`` on ``ipython`` (what ``%load_ext raftkit`` calls)."""
    magic = RaftMagic(ipython)

    def raft(line):
        return magic(line)

    raft.__doc__ = DOC
    raft.magic = magic  # reach the state from tests: ip.find_line_magic("raft").magic
    ipython.register_magic_function(raft, magic_kind="line", magic_name="raft")
