"""raftkit: learn Raft in Jupyter on a real, threaded, deterministic implementation.

>>> import raftkit
>>> with raftkit.Cluster(3, seed=1) as c:
...     c.check_one_leader() in range(3)
True
"""

from .clock import Killed, RealClock, Ticker, VirtualClock
from .cluster import Cluster, ClusterState, NodeState
from .config import Config
from .errors import CheckFailed, DeadlockError, NodeError, RaftkitError, SafetyViolation
from .messages import (
    AppendEntriesArgs,
    AppendEntriesReply,
    ApplyMsg,
    CMState,
    InstallSnapshotArgs,
    InstallSnapshotReply,
    LogEntry,
    RequestVoteArgs,
    RequestVoteReply,
)
from .raft import ConsensusModule
from .trace import Event

__version__ = "0.1.0"


def __getattr__(name):
    """``raftkit.viz`` (drawings, widget) loads on first use: the core needs no plotting packages."""
    if name in ("viz", "kv", "kvcluster", "lincheck", "chaos"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'raftkit' has no attribute {name!r}")


def load_ipython_extension(ipython):
    """``%load_ext raftkit``: registers the ``%raft`` magic."""
    from .magic import load_ipython_extension as load
    load(ipython)

__all__ = [
    "Cluster", "ClusterState", "NodeState", "Config", "ConsensusModule", "CMState", "LogEntry", "ApplyMsg",
    "RequestVoteArgs", "RequestVoteReply", "AppendEntriesArgs", "AppendEntriesReply",
    "InstallSnapshotArgs", "InstallSnapshotReply", "Event",
    "RaftkitError", "CheckFailed", "SafetyViolation", "DeadlockError", "NodeError",
    "VirtualClock", "RealClock", "Ticker", "Killed",
]
