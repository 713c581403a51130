"""What the ports of eliben/raft's tests share from its ``testharness.go``."""


def sleep_ms(cluster, ms: float) -> None:
    """eliben's ``sleepMs``: let ``ms`` milliseconds of cluster time pass
    (a ``Cluster`` or a ``KVCluster``)."""
    cluster.run_for(ms / 1000)
