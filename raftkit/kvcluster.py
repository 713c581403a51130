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
from .kv import Clerk, History, KVService, KVStore

__all__ = ["KVCluster"]


class KVCluster(Cluster):
    """``Cluster`` + the KV service on every node + clerks sharing one
    history (what every client saw, for the linearizability checker)."""

    def __init__(self, n: int = 3, *, clerk_timeout: float = 10.0, service_class: type = KVService,
                 isolation: str | None = None, **kwargs):
        self.clerk_class = Clerk
        kits = isolation == "process" and getattr(kwargs.get("node_class"), "raftkit_spec", None) is None
        if kits:  # the kit's servers and clerks, in processes of their own
            if "node_class" in kwargs:
                raise ValueError('KVCluster(isolation="process") runs the kit\'s ConsensusModule in every server\'s '
                                 "process; node_class is for clusters in this process")
            if service_class is not KVService:
                raise ValueError('isolation="process" runs the kit\'s KV service (its store and clerk are the '
                                 "kit's KVStore and Clerk); a service_class of your own runs in-process only")
            from .isolation.kvprocess import hosted_kv, kv_options, kv_spec
            spec = kv_spec(KVStore, Clerk)
            kwargs.update(kv_options(spec))
            service_class, self.clerk_class = kwargs.pop("service_class"), hosted_kv(spec)[1]
        elif isolation is not None:
            kwargs["isolation"] = isolation
        hosted = getattr(service_class, "raftkit_nodes", None) is not None  # its store lives in node processes
        if not (isinstance(service_class, type) and (issubclass(service_class, KVService) or hosted)):
            raise TypeError(f"service_class must be a subclass of raftkit.kv.KVService, got {service_class!r}")
        super().__init__(n, service_class=service_class, **kwargs)
        if kits:  # what rerun() passes back
            self.options = {k: v for k, v in self.options.items() if k not in ("node_class", "service_class")}
            self.options["isolation"] = "process"
        self.clerk_timeout = clerk_timeout
        self.history = History()
        self.clerks: list[Clerk] = []

    @takes_turns
    def clerk(self) -> Clerk:
        """A new client with its own id."""
        clerk = self.clerk_class(self, len(self.clerks), timeout=self.clerk_timeout, history=self.history)
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
