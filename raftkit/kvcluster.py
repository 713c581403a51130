"""A cluster whose nodes run the replicated KV service, with clerks.

>>> from raftkit.kvcluster import KVCluster
>>> with KVCluster(3, seed=1) as kv:
...     kv.put("x", "1")
...     kv.append("x", "2")
...     kv.get("x")
'12'
"""

from __future__ import annotations

from collections.abc import Callable

from .cluster import Cluster, takes_turns
from .kv import Clerk, History, KVService

__all__ = ["KVCluster"]


class KVCluster(Cluster):
    """``Cluster`` + the KV service on every node + clerks sharing one
    history (what every client saw, for the linearizability checker)."""

    def __init__(self, n: int = 3, *, clerk_timeout: float = 10.0, service_class: type = KVService, **kwargs):
        if not issubclass(service_class, KVService):
            raise TypeError(f"service_class must be a subclass of raftkit.kv.KVService, got {service_class!r}")
        super().__init__(n, service_class=service_class, **kwargs)
        self.clerk_timeout = clerk_timeout
        self.history = History()
        self.clerks: list[Clerk] = []

    @takes_turns
    def clerk(self) -> Clerk:
        """A new client with its own id."""
        clerk = Clerk(self, len(self.clerks), timeout=self.clerk_timeout, history=self.history)
        self.clerks.append(clerk)
        return clerk

    def _default(self) -> Clerk:
        return self.clerks[0] if self.clerks else self.clerk()

    @takes_turns
    def get(self, key: str) -> str:
        """Read ``key`` through the log, with the default clerk (runs the cluster until done)."""
        return self._default().get(key)

    @takes_turns
    def put(self, key: str, value: str) -> None:
        self._default().put(key, value)

    @takes_turns
    def append(self, key: str, value: str) -> str:
        return self._default().append(key, value)

    @takes_turns
    def start_client(self, body: Callable[[Clerk], None], clerk: Clerk | None = None) -> Clerk:
        """Run ``body(clerk)`` on a thread of the cluster's clock: a client
        that works while the cluster runs (``run_for``)."""
        clerk = clerk or self.clerk()
        self.clock.go(body, clerk, owner=clerk, name=f"client {clerk.client_id}")
        return clerk

    @takes_turns
    def data(self, i: int) -> dict:
        """Node i's key/value data (its current incarnation)."""
        return dict(self.services[self._node_id(i)].store.data)
