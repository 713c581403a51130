"""The safety monitor: Raft's guarantees (Figure 3 of the paper), checked
after every event of a virtual-clock run.

It looks at node state directly (it never trusts a node to report), so it
also catches node classes that are broken on purpose. Checked:

* Election Safety: at most one leader per term.
* Leader Append-Only: a leader never overwrites or deletes entries of its log.
* Log Matching: if two logs contain an entry with the same index and term,
  the logs are identical up to that index. Checked inductively: every entry
  (index, term) ever seen must always come with the same command and the same
  term before it.
* Committed entries are never lost or changed: a node never drops or changes
  an entry at an index that is committed; a new leader has every committed
  entry (Leader Completeness).
* State Machine Safety: no two nodes apply different commands at one index.

To stay cheap, each node's log is re-examined only when its identity, length,
last entry or snapshot base changed since the last look.
"""

from __future__ import annotations

from .errors import SafetyViolation
from .messages import CMState
from .raft import extend_if_appended

__all__ = ["SafetyMonitor"]

LEADER = CMState.LEADER


class _View:
    """What the monitor saw of one node incarnation last time."""

    __slots__ = ("node", "source", "log", "base", "base_term", "commit", "state", "term")

    def __init__(self, node):
        self.node = node
        self.source = None  # the node's log list, as last examined (``log`` is a copy of it)
        self.log, self.base, self.base_term = [], 0, 0
        self.commit, self.state, self.term = 0, None, -1


class SafetyMonitor:
    def __init__(self, n: int, trace):
        self.trace = trace
        self.leaders: dict[int, int] = {}        # term -> leader id
        self.entries: dict[tuple, tuple] = {}    # (index, term) -> (previous term, command)
        self.committed: dict[int, tuple] = {}    # index -> (term, command)
        self.applied: dict[int, object] = {}     # index -> command
        self._views: list[_View | None] = [None] * n

    def violation(self, invariant: str, message: str):
        events = self.trace.events
        raise SafetyViolation(invariant, message, events[-1] if events else None, events)

    # ------------------------------------------------------------ per node
    def check(self, node) -> None:
        view = self._views[node.id]
        if view is None or view.node is not node:  # a new incarnation: examine it all
            view = self._views[node.id] = _View(node)
        log, seen = node.log, view.log
        if (log is not view.source or len(log) != len(seen) or node.last_included_index != view.base
                or (log and log[-1] is not seen[-1])):
            self._check_log(node, view)
            view.source = log
        if node.commit_index != view.commit:
            self._check_commit(node, view)
        if node.state is LEADER and (view.state is not LEADER or view.term != node.current_term):
            self._check_leader(node, view)  # newly leader: once per node and term is enough
        view.state, view.term = node.state, node.current_term

    def _check_leader(self, node, view):
        """``node`` just became leader of its term."""
        term = node.current_term
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            self.violation("Election Safety", f"nodes {other} and {node.id} are both leaders of term {term}")
        base = node.last_included_index
        for index, (t, command) in self.committed.items():
            if index > base and (index > base + len(node.log) or node.log[index - base - 1].term != t):
                self.violation("Leader Completeness",
                               f"node {node.id} became leader of term {term} without committed entry "
                               f"{index} (term {t}, command {command!r})")

    def _check_log(self, node, view):
        base, base_term = node.last_included_index, node.last_included_term
        old, old_base = view.log, view.base
        old_last = old_base + len(old)
        # first index (> both bases) where old and new disagree
        if base == old_base and extend_if_appended(old, node.log):  # the common case: entries were appended
            new, first = old, old_last + 1
        else:
            new = list(node.log)
            start = max(base, old_base)
            first = start + 1
            for a, b in zip(old[start - old_base:], new[start - base:]):
                if a != b:
                    break
                first += 1
        if first <= old_last and view.state is LEADER and node.state is LEADER and view.term == node.current_term:
            self.violation("Leader Append-Only",
                           f"leader {node.id} of term {node.current_term} changed or deleted its entries "
                           f"from index {first}")
        for index in range(max(first, base + 1), old_last + 1):  # entries that went away or changed
            lost = old[index - old_base - 1]
            if self.committed.get(index) == (lost.term, lost.command):
                now = new[index - base - 1] if index <= base + len(new) else None
                if now is None or now.term != lost.term:
                    self.violation("Committed entries are never lost",
                                   f"node {node.id} deleted committed entry {index} (term {lost.term}, "
                                   f"command {lost.command!r})")
        for index in range(max(first, base + 1), base + len(new) + 1):  # Log Matching, inductively
            entry = new[index - base - 1]
            prev_term = base_term if index == base + 1 else new[index - base - 2].term
            seen = self.entries.setdefault((index, entry.term), (prev_term, entry.command))
            if seen != (prev_term, entry.command):
                self.violation("Log Matching",
                               f"node {node.id} has entry {index} of term {entry.term} = {entry.command!r} "
                               f"after an entry of term {prev_term}; another log had {seen[1]!r} after term {seen[0]}")
        view.log, view.base, view.base_term = new, base, base_term

    def _check_commit(self, node, view):
        base = node.last_included_index
        if node.commit_index < view.commit:
            self.violation("Committed entries are never lost",
                           f"node {node.id}'s commit_index went back from {view.commit} to {node.commit_index}")
        if node.commit_index > base + len(node.log):
            self.violation("Commit only what you have",
                           f"node {node.id} set commit_index={node.commit_index} beyond its last entry "
                           f"{base + len(node.log)}")
        for index in range(max(view.commit, base) + 1, node.commit_index + 1):
            entry = node.log[index - base - 1]
            known = self.committed.setdefault(index, (entry.term, entry.command))
            if known != (entry.term, entry.command):
                self.violation("Committed entries never change",
                               f"node {node.id} committed index {index} = {entry.command!r} (term {entry.term}), "
                               f"but {known[1]!r} (term {known[0]}) was committed there before")
        view.commit = node.commit_index

    # ------------------------------------------------------------- applies
    def check_apply(self, node_id: int, index: int, command) -> None:
        known = self.applied.setdefault(index, command)
        if known != command:
            self.violation("State Machine Safety",
                           f"node {node_id} applied {command!r} at index {index}, another node applied {known!r}")
