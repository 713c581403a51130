"""The replicated KV service: reads through the log, exactly-once clerks,
snapshots that carry the deduplication table (eliben parts 4-5, MIT lab 4A style)."""


import pytest

from raftkit import lincheck
from raftkit.kv import ERR_WRONG_LEADER, ClerkTimeout, KVArgs, KVOp, KVReply, KVStore
from raftkit.kvcluster import KVCluster
from tests.broken import LocalReadKV, NoDedupKV

SEEDS = [1, 2, 3]


def history_of(kv):
    return [lincheck.Operation(**vars(e)) for e in kv.history]


def test_store_deduplicates_and_returns_the_original_result():
    """A retried operation (same client and seq) is applied once and gets its first answer."""
    s = KVStore()
    assert s.apply(KVOp(1, 1, "append", "x", "a")) == "a"
    assert s.apply(KVOp(2, 1, "append", "x", "b")) == "ab"
    assert s.apply(KVOp(1, 1, "append", "x", "a")) == "a"   # duplicate: original result
    assert s.data == {"x": "ab"}
    assert s.apply(KVOp(1, 2, "get", "x")) == "ab"
    s2 = KVStore()
    s2.load(s.dump())
    assert s2.data == s.data and s2.last == s.last


@pytest.mark.parametrize("seed", SEEDS)
def test_basic_put_get_append(seed):
    with KVCluster(3, seed=seed) as kv:
        assert kv.get("missing") == ""
        kv.put("x", "1")
        assert kv.append("x", "2") == "12"
        assert kv.get("x") == "12"
        kv.run_for(0.2)
        assert all(kv.data(i) == {"x": "12"} for i in range(3)), f"seed={seed}"


def test_bad_arguments():
    with KVCluster(3, seed=1) as kv:
        with pytest.raises(TypeError, match="string"):
            kv.put("x", 1)
        with pytest.raises(TypeError, match="string"):
            kv.get(3)
        with pytest.raises(TypeError, match="KVService"):
            KVCluster(3, service_class=object)


@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_clients_appends_all_land_once(seed):
    """Five clients append concurrently; every append appears exactly once, in one order on every node."""
    with KVCluster(5, seed=seed) as kv:
        def client(clerk):
            for k in range(10):
                clerk.append("log", f"<{clerk.client_id}.{k}>")

        for _ in range(5):
            kv.start_client(client)
        kv.run_for(10.0)
        final = kv.get("log")
        for c in range(5):
            for k in range(10):
                assert final.count(f"<{c}.{k}>") == 1, f"seed={seed}: <{c}.{k}> in {final}"
        kv.run_for(0.5)
        assert len({kv.data(i)["log"] for i in range(5)}) == 1
        result = lincheck.check(history_of(kv), timeout=30)
        assert result.status == "ok", f"seed={seed}: {result}"


@pytest.mark.parametrize("seed", SEEDS)
def test_leader_crash_mid_request(seed):
    """The leader crashes while a put is in flight: the clerk retries at the
    new leader and the put lands exactly once."""
    with KVCluster(5, seed=seed) as kv:
        kv.put("k", "0")
        leader = kv.leader()
        clerk = kv.clerk()
        clerk.leader = leader
        done = []
        kv.start_client(lambda c: done.append(c.append("k", "+")), clerk)
        kv.run_for(0.002)       # the request is on its way to the leader
        kv.crash(leader)
        assert kv.run_until(lambda _: done, 15), f"seed={seed}: the append never finished"
        assert kv.get("k") == "0+", f"seed={seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_retried_append_applied_exactly_once(seed):
    """Replies are lost half the time: clerks retry, the dedup table makes
    every append count once."""
    with KVCluster(3, seed=seed) as kv:
        kv.put("k", "")
        kv.set_network(reply_drop=0.5)
        for k in range(10):
            kv.append("k", f"{k};")
        kv.set_network(reply_drop=0.0)
        assert kv.get("k") == "".join(f"{k};" for k in range(10)), f"seed={seed}"
        dropped = [e for e in kv.trace if e.kind == "drop" and "kv_request" in e.detail]
        assert dropped, f"seed={seed}: the test should have lost some replies"


@pytest.mark.parametrize("seed", SEEDS)
def test_without_dedup_a_retry_appends_twice(seed):
    """The same run without the dedup table: some append lands twice."""
    with KVCluster(3, seed=seed, service_class=NoDedupKV) as kv:
        kv.put("k", "")
        kv.set_network(reply_drop=0.5)
        for k in range(10):
            kv.append("k", f"{k};")
        kv.set_network(reply_drop=0.0)
        assert kv.get("k") != "".join(f"{k};" for k in range(10)), f"seed={seed}"


def cut_off_old_leader(kv):
    """x = "old"; the leader is cut off from the majority, which then writes
    x = "new". Returns the old leader and a clerk that asks it first."""
    kv.put("x", "old")
    old = kv.leader()
    others = [i for i in range(5) if i != old]
    kv.partition([old], others)
    writer = kv.clerk()
    writer.leader = others[0]
    writer.put("x", "new")
    reader = kv.clerk()
    reader.leader = old
    return old, reader


@pytest.mark.parametrize("seed", SEEDS)
def test_partitioned_leader_does_not_answer_reads(seed):
    """An old leader cut off from the majority cannot commit a Get, so it
    cannot answer with its stale value; the clerk gets the new value elsewhere."""
    with KVCluster(5, seed=seed) as kv:
        old, reader = cut_off_old_leader(kv)
        assert kv.get_state(old)[1], f"seed={seed}: the old leader should still believe it leads"
        assert reader.get("x") == "new", f"seed={seed}"
        assert lincheck.check(history_of(kv)).status == "ok", f"seed={seed}"
        assert any(e.kind == "reply" and e.node == old and "ErrTimeout" in e.detail for e in kv.trace) or \
            any(e.kind == "reply" and e.node == old and "ErrWrongLeader" in e.detail for e in kv.trace)


@pytest.mark.parametrize("seed", SEEDS)
def test_local_reads_are_stale_on_a_partitioned_leader(seed):
    """The broken server returns the stale value: what the log prevents."""
    with KVCluster(5, seed=seed, service_class=LocalReadKV) as kv:
        _, reader = cut_off_old_leader(kv)
        assert reader.get("x") == "old", f"seed={seed}"
        result = lincheck.check(history_of(kv))
        assert result.status == "illegal" and result.per_key["x"] == "illegal", f"seed={seed}: {result}"


@pytest.mark.parametrize("seed", SEEDS)
def test_snapshots_keep_data_and_dedup_table(seed):
    """With snapshots every 5 entries, a restarted node recovers the data
    and the dedup table from its snapshot, and the Raft state stays small."""
    with KVCluster(3, seed=seed, snapshot_interval=5) as kv:
        for k in range(30):
            kv.append("k", str(k % 10))
        kv.run_for(0.3)
        for i in range(3):
            kv.restart(i)
        kv.run_for(1.0)
        want = "".join(str(k % 10) for k in range(30))
        assert kv.get("k") == want, f"seed={seed}"
        kv.run_for(0.3)
        for i in range(3):
            assert kv.applied(i)[0].snapshot_valid, f"seed={seed}: node {i} did not restart from a snapshot"
            assert kv.services[i].store.last, f"seed={seed}: the dedup table was lost"
            assert kv.data(i)["k"] == want
        assert max(kv.persisted_size(i) for i in range(3)) < 2000, f"seed={seed}"


def test_clerk_times_out_when_no_majority():
    """With every server cut off, an operation gives up with ClerkTimeout, not a hang."""
    with KVCluster(3, seed=4, clerk_timeout=2.0) as kv:
        kv.put("x", "1")
        kv.partition([0], [1], [2])
        with pytest.raises(ClerkTimeout, match="may or may not have been applied"):
            kv.put("x", "2")
        assert kv.history[-1].ret is None


def test_wrong_leader_reply():
    with KVCluster(3, seed=5) as kv:
        kv.put("a", "b")
        follower = (kv.leader() + 1) % 3
        assert kv.services[follower].kv_request(KVArgs(9, 1, "get", "a")) == KVReply(ERR_WRONG_LEADER)
