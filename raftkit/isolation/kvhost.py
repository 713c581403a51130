"""The untrusted side of an isolated KV cluster (exercise 7): what a
template that loaded a KV store class and a clerk class runs in the hosts
it forks.

One host runs one of three things, named by its ``construct`` job:

* ``node``: a KV server: the kit's ``ConsensusModule`` and the kit's
  ``KVService`` whose state machine is the loaded store class. Every apply
  is reported to the trusted side first (which records it for the safety
  monitor, as for any node), then executed here; ``kv_request`` RPCs reach
  the service as they would in one process.
* ``clerk``: one clerk, whose cluster is a stand-in holding a host clock
  and a bus whose calls go to the trusted bus.
* ``store``: a bare store, for the white-box checks of its methods.

A clerk's ``request`` answers ``("value", result)`` or ``("timeout", text)``
(its ``ClerkTimeout``), so that the trusted side can tell the two apart.
"""

from __future__ import annotations

import random

from ..clock import Killed
from ..errors import NodeError, RaftkitError
from ..kv import Clerk, ClerkTimeout, History, KVService
from ..messages import ApplyMsg, decode, encode, summarize
from ..raft import ConsensusModule
from .host import Host, HostBus, HostClock, HostStorage, _format_error, _load_class

__all__ = ["HostedKV", "KVHost", "load_kv"]


class HostedKV:
    """What a KV template loads: the store class and the clerk class. Its
    hosts are ``KVHost``s."""

    def __init__(self, store: type, clerk: type):
        self.store, self.clerk = store, clerk
        self.__name__ = f"{getattr(store, '__name__', 'store')} + {getattr(clerk, '__name__', 'clerk')}"


def load_kv(store_spec, clerk_spec, progress=None):
    """A template's loader for a KV cluster of importable classes."""
    return HostedKV(_load_class(store_spec)[0], _load_class(clerk_spec)[0]), None


class _Service(KVService):
    """The kit's KV server in a node host: every apply is first reported to
    the trusted side (which checks its order and records it), then run here."""

    def __init__(self, host, node_id, snapshot_interval, store_class):
        super().__init__(node_id, snapshot_interval, None, HostClock(host))
        self.store = store_class()
        self.host = host

    def apply(self, msg: ApplyMsg) -> None:
        self.host.request("apply", tuple(getattr(msg, f) for f in ApplyMsg.__dataclass_fields__), block=True)
        super().apply(msg)


class _ClientBus(HostBus):
    def add_client(self, obj) -> int:
        return self.id  # the endpoint the trusted bus gave this clerk


class _ClerkCluster:
    """What a clerk in a host sees as its cluster: a clock, a bus, n."""

    def __init__(self, host, endpoint: int, n: int):
        self.clock, self.bus, self.n = HostClock(host), _ClientBus(host, endpoint), n


class KVHost(Host):
    """A host for a KV node, a clerk or a bare store (see the module)."""

    threaded = frozenset({"run", "serve", "call"})  # kv_request ("serve") and a clerk's request block

    def __init__(self, fd: int, kv: HostedKV):
        super().__init__(fd, kv)
        self.service = None
        self.obj = None        # the clerk or the bare store
        self._cluster = None   # a clerk's cluster, kept alive (a clerk holds it weakly)

    def _construct(self, kv, role, *args):
        if role == "node":
            i, peers, config, rng_seed, state, snapshot, interval = args
            service = _Service(self, i, interval, kv.store)
            node = ConsensusModule(i, peers, clock=HostClock(self), bus=HostBus(self, i),
                                   storage=HostStorage(self, state, snapshot), apply=service.apply, config=config,
                                   rng=random.Random(rng_seed), emit=self._emit)
            service.node = node
            self.node, self.service = node, service
            self.locks.append((node.mu, f"node {i}'s lock self.mu"))
        elif role == "clerk":
            endpoint, client_id, n, timeout = args
            self._cluster = _ClerkCluster(self, endpoint, n)
            self.obj = kv.clerk(self._cluster, client_id, timeout=timeout, history=History())
        elif role == "store":
            self.obj = kv.store()
        else:
            raise ValueError(f"unknown role {role!r}")
        return None

    def _do_job(self, job, what, payload):
        if what in ("handle", "serve") and self.service is not None:
            method, packet = payload
            owner = next((o for o in (self.node, self.service) if hasattr(o, method)), None)  # the bus's order
            if owner is None or method.startswith("_"):
                raise TypeError(f"node {self.node.id} has no RPC handler {method!r}")
            reply = getattr(owner, method)(decode(*packet))
            return (encode(reply), summarize(reply) if reply is not None else "None",
                    getattr(reply, "vote_granted", getattr(reply, "success", None)))
        if what != "call" or self.obj is None:
            return super()._do_job(job, what, payload)
        try:
            if isinstance(self.obj, Clerk) and tuple(payload[0]) == ("request",):
                try:
                    return ("value", super()._do_job(job, what, payload))
                except ClerkTimeout as e:
                    return ("timeout", str(e)[:2000])
            return super()._do_job(job, what, payload)
        except (Killed, RaftkitError):
            raise
        except Exception as e:  # named for the report: the client, or the store
            who = f"client {self.obj.client_id}" if isinstance(self.obj, Clerk) else "the store"
            raise NodeError(f"{who}: {'.'.join(payload[0])} raised {type(e).__name__}: {e}\n"
                            + _format_error(e)) from None

    def _resolve(self, path, default=None):
        obj = self.node if self.obj is None else self.obj
        if self.service is not None and path and path[0] == "kv_service":
            obj, path = self.service, path[1:]
        for name in path:
            obj = getattr(obj, name) if default is None else getattr(obj, name, default)
            if obj is default and default is not None:
                break
        return obj


HostedKV.raftkit_host = KVHost
