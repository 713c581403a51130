"""Log compaction (snapshots): the MIT 6.5840 Lab 3D scenarios, the ApplyMsg
stream rules, and white-box tests of the snapshot handlers.

Source: the MIT 6.5840 Lab 3D tester (``applierSnap`` in ``config.go``, the
3D tests in ``test_test.go``, https://pdos.csail.mit.edu/6.824/labs/lab-raft.html)
and section 7 of the Raft paper (Ongaro & Ousterhout, 2014). The ports
follow tests/test_mit_scenarios.py: ``crash1(i)`` = ``c.crash(i)``,
``start1(i); connect(i)`` = ``c.restart(i); c.connect(i)``,
``rafts[i].Start(x)`` = ``c.submit(x, node=i)``, the tests' random choices
come from a ``random.Random(seed)`` per test, every run is deterministic.

Differences from MIT that are deliberate:

* The built-in service (``raftkit.service.Service``) snapshots after applying
  every index divisible by k (10, 20, ...), MIT's tester at (k+1) % 10 == 0
  (9, 19, ...). Its snapshot is ``pickle.dumps(commands)``, the dict
  index -> command of everything it applied, where MIT encodes
  (lastIncludedIndex, xlog).
* MIT's applierSnap checks every ApplyMsg as it arrives and aborts the
  process; here the service itself already refuses out-of-order applies and
  backwards snapshots, and ``check_apply_stream`` re-checks each node's
  recorded stream (``c.applied(i)``) after every iteration, before every
  crash and at the end, independently of the service's own checks.
* ``MAX_LOG_BYTES`` is re-derived for our serializer (MIT: 2000 bytes of gob),
  see below; ``test_log_size_bound_discriminates`` shows it fails a node
  that never trims its log.
"""

from __future__ import annotations

import pickle
import random

import pytest

import raftkit
from raftkit import AppendEntriesArgs, ApplyMsg, Config, InstallSnapshotArgs, LogEntry

SNAPSHOT_INTERVAL = 10  # MIT's SnapShotInterval
SEEDS = [1, 2, 3]        # the 30-iteration snapcommon tests (~0.2-0.6 s each)
CHEAP_SEEDS = [1, 2, 3, 4]


def rand_int(rng: random.Random) -> int:
    """Go's rand.Int(): a non-negative 63-bit int (the 3D tests' commands)."""
    return rng.getrandbits(63)


# ---------------------------------------------------------------------------
# The persisted-size bound (MIT's MAXLOGSIZE = 2000 bytes of gob), re-derived.
#
# ConsensusModule.persist() writes a header
#     pickle((current_term, voted_for, last_included_index, last_included_term, len(log)))
# (18-30 bytes for the terms and indexes of these tests) followed by one
# pickle((term, command)) per log entry (_encoded_log). For a 63-bit int
# command (rand.Int(), as MIT) that is ENTRY_BYTES = 26 bytes per entry
# (pickle protocol 5: PROTO 2 + FRAME 9 + BININT1 term 2 + LONG1 int 10 +
# TUPLE2 1 + MEMOIZE 1 + STOP 1; 1 in 256 random ints needs a byte less),
# computed below and checked against the real node in
# test_persisted_entry_cost. Gob costs roughly 10-20 bytes per such entry, so
# MIT's 2000 bytes allow ~100-200 entries; ours are costlier per entry.
#
# What a trimmed log holds at the check (after the iteration's last one()):
# at most SNAPSHOT_INTERVAL - 1 = 9 applied entries since the last snapshot,
# plus entries not yet applied on that node: one iteration's worth on a
# lagging follower or a just-restarted victim (nn <= 14 Starts + up to 3
# one()s, plus one()'s retries on an unreliable network), i.e. ~9 + 2 x 17,
# about 45 entries = ~1200 bytes in the worst case. Measured: at MIT's check
# point every scenario here peaks at 259-271 bytes (header + 9-10 entries).
# An untrimmed log after a snapcommon run holds ~190-370 entries
# (4900-9600 bytes); 300 entries are 7800 bytes.
#
# So the budget is 70 entries: MAX_LOG_BYTES = 70 * 26 + 40 = 1860 bytes,
# 1.5x the trimmed worst case (~7x the measured peak) and ~4x below an
# untrimmed 300-entry log. A log that is never trimmed crosses it after ~70
# commits (iteration 8 of 30 for seed 1; test_log_size_bound_discriminates).
# ---------------------------------------------------------------------------
ENTRY_BYTES = len(pickle.dumps((1, 2**62), protocol=pickle.HIGHEST_PROTOCOL))  # 26
HEADER_BYTES_MAX = 40
LOG_BUDGET_ENTRIES = 70
MAX_LOG_BYTES = LOG_BUDGET_ENTRIES * ENTRY_BYTES + HEADER_BYTES_MAX  # 1860


def log_size(c: raftkit.Cluster) -> int:
    """MIT's LogSize(): max persisted Raft state (snapshot excluded) over all servers."""
    return max(c.persisted_size(i) for i in range(c.n))


# ---------------------------------------------------------------------------
# The ApplyMsg stream (MIT applierSnap, after the fact)
# ---------------------------------------------------------------------------

def decode_snapshot(msg: ApplyMsg, node: int, seed: int) -> dict:
    """The built-in service's snapshot: pickle of its commands dict, which
    must hold exactly the indexes 1..snapshot_index (MIT: "snapshot doesn't
    match m.SnapshotIndex")."""
    assert isinstance(msg.snapshot, (bytes, bytearray)) and msg.snapshot, (
        f"node {node}: snapshot message at {msg.snapshot_index} carries no data {msg.snapshot!r} (seed={seed})")
    state = pickle.loads(msg.snapshot)
    assert isinstance(state, dict), f"node {node}: snapshot decodes to {type(state).__name__} (seed={seed})"
    assert sorted(state) == list(range(1, msg.snapshot_index + 1)), (
        f"node {node}: snapshot_index={msg.snapshot_index} but the snapshot holds indexes "
        f"{min(state, default=None)}..{max(state, default=None)} ({len(state)} of them) (seed={seed})")
    return state


def check_apply_stream(msgs: list[ApplyMsg], node: int, seed: int,
                       agreed: dict | None = None) -> tuple[int, dict]:
    """Assert that one incarnation's ApplyMsg stream follows API.md / MIT's
    applierSnap: optionally a snapshot_valid message first; then commands at
    consecutive indexes continuing exactly from the snapshot index (from 1
    without one); any later snapshot_valid message (an InstallSnapshot from
    the leader) has a snapshot_index greater than the last applied index, and
    commands continue right after it. Every message is exactly one of
    command / snapshot. ``agreed`` (index -> command, shared across nodes and
    incarnations) catches two streams disagreeing (MIT checkLogs).

    Returns (last applied index, the service state index -> command)."""
    last, state = 0, {}
    for k, m in enumerate(msgs):
        where = f"node {node}, message #{k} of this incarnation"
        assert m.command_valid != m.snapshot_valid, (
            f"{where}: command_valid={m.command_valid} snapshot_valid={m.snapshot_valid} (seed={seed})")
        if m.snapshot_valid:
            assert k == 0 or m.snapshot_index > last, (
                f"{where}: snapshot at {m.snapshot_index} after applying up to {last}: "
                f"the service moved backwards (seed={seed})")
            assert m.snapshot_index >= 1 and m.snapshot_term >= 1, (
                f"{where}: snapshot_index={m.snapshot_index} snapshot_term={m.snapshot_term} (seed={seed})")
            state = dict(decode_snapshot(m, node, seed))
            last = m.snapshot_index
            items = state.items()
        else:
            assert m.command_index == last + 1, (
                f"{where}: apply out of order, expected index {last + 1}, got {m.command_index} (seed={seed})")
            last = m.command_index
            state[last] = m.command
            items = [(last, m.command)]
        if agreed is not None:
            for index, command in items:
                known = agreed.setdefault(index, command)
                assert known == command, (
                    f"{where}: index {index} = {command!r}, but another stream has {known!r} (seed={seed})")
    return last, state


class StreamChecker:
    """Checks every node's stream; keeps one agreement map for the whole run."""

    def __init__(self, c: raftkit.Cluster, seed: int):
        self.c, self.seed = c, seed
        self.agreed: dict = {}

    def node(self, i: int) -> tuple[int, dict]:
        return check_apply_stream(self.c.applied(i), i, self.seed, self.agreed)

    def all(self) -> None:
        for i in range(self.c.n):
            self.node(i)


class RestartWatch:
    """Requirement 3: a restarted node's stream starts with the snapshot it
    persisted. Call ``crash(i)`` instead of c.crash(i) and ``restart(i)``
    instead of c.restart(i); ``check()`` once the node has run a little."""

    def __init__(self, c: raftkit.Cluster, streams: StreamChecker, seed: int):
        self.c, self.streams, self.seed = c, streams, seed
        self.before: dict[int, tuple[int, dict]] = {}  # node -> (lii at crash, state of old incarnation)
        self.pending: dict[int, int] = {}  # restarted node -> persisted last_included_index
        self.restarts_from_snapshot = 0

    def crash(self, i: int) -> None:
        if self.c.is_alive(i):
            _, state = self.streams.node(i)  # the dying incarnation's whole stream
            self.before[i] = (self.c.nodes[i].last_included_index, state)
        self.c.crash(i)

    def restart(self, i: int) -> None:
        self.crash(i)
        self.c.restart(i)
        # Nothing has run yet: the new incarnation's fields are what restore() read back.
        lii = self.c.nodes[i].last_included_index
        if i in self.before:
            old_lii, _ = self.before[i]
            assert lii == old_lii, (
                f"node {i} had last_included_index={old_lii} when it crashed but restarts "
                f"with {lii}: the snapshot point was not persisted (seed={self.seed})")
        self.pending[i] = lii

    def check(self) -> None:
        for i, lii in list(self.pending.items()):
            msgs = self.c.applied(i)
            if not msgs:
                continue  # nothing delivered yet (lii == 0 and nothing committed)
            del self.pending[i]
            if lii == 0:
                continue  # no snapshot to restore: check_apply_stream wants index 1 (or a leader's snapshot) first
            first = msgs[0]
            assert first.snapshot_valid and first.snapshot_index == lii, (
                f"node {i} restarted from a snapshot at {lii} but its stream starts with {first} "
                f"(seed={self.seed})")
            self.restarts_from_snapshot += 1
            state = decode_snapshot(first, i, self.seed)
            _, old_state = self.before.get(i, (0, {}))
            for index, command in old_state.items():
                if index <= lii:
                    assert state[index] == command, (
                        f"node {i}: its restored snapshot has {state[index]!r} at {index}, its previous "
                        f"incarnation applied {command!r} (seed={self.seed})")


# ---------------------------------------------------------------------------
# 3D scenarios
# ---------------------------------------------------------------------------

def snapcommon(c: raftkit.Cluster, rng: random.Random, *, disconnect: bool, crash: bool,
               streams: StreamChecker, restarts: RestartWatch):
    """MIT's snapcommon, 30 iterations, as a generator: it yields the
    iteration number at the point where MIT checks LogSize() (after the
    iteration's last one() on 2 or 3 servers, before the victim returns), so
    the caller applies the size check there. The apply streams and restarted
    nodes are checked after every iteration."""
    servers = c.n
    iters = 30
    c.one(rand_int(rng), servers, True)
    leader1 = c.check_one_leader()
    for i in range(iters):
        victim = (leader1 + 1) % servers
        sender = leader1
        if i % 3 == 1:
            sender = (leader1 + 1) % servers
            victim = leader1
        if disconnect:
            c.disconnect(victim)
            c.one(rand_int(rng), servers - 1, True)
        if crash:
            restarts.crash(victim)
            c.one(rand_int(rng), servers - 1, True)
        # perhaps send enough to get a snapshot
        nn = SNAPSHOT_INTERVAL // 2 + rng.randrange(SNAPSHOT_INTERVAL)
        for _ in range(nn):
            c.submit(rand_int(rng), node=sender)
        # let applier threads catch up with the Start()'s
        if not disconnect and not crash:
            # make sure all followers have caught up, so that an
            # InstallSnapshot RPC isn't required for the basic test
            c.one(rand_int(rng), servers, True)
        else:
            c.one(rand_int(rng), servers - 1, True)
        yield i
        if disconnect:
            # reconnect a follower, who maybe behind and needs to receive a
            # snapshot to catch up
            c.connect(victim)
            c.one(rand_int(rng), servers, True)
            leader1 = c.check_one_leader()
        if crash:
            restarts.restart(victim)
            c.connect(victim)
            c.one(rand_int(rng), servers, True)
            leader1 = c.check_one_leader()
        streams.all()
        restarts.check()


def run_snapcommon(seed: int, *, disconnect: bool, reliable: bool, crash: bool) -> dict:
    """One snapcommon test with the size check after every iteration and the
    stream checks at the end. Returns a few counts for extra assertions."""
    rng = random.Random(seed)
    with raftkit.Cluster(3, seed=seed, snapshot_interval=SNAPSHOT_INTERVAL) as c:
        if not reliable:
            c.set_reliable(False)
        streams = StreamChecker(c, seed)
        restarts = RestartWatch(c, streams, seed)
        peak = 0
        for it in snapcommon(c, rng, disconnect=disconnect, crash=crash,
                             streams=streams, restarts=restarts):
            size = log_size(c)
            peak = max(peak, size)
            assert size < MAX_LOG_BYTES, (
                f"Log size too large: {size} bytes >= {MAX_LOG_BYTES} after iteration {it} "
                f"(sizes {[c.persisted_size(i) for i in range(3)]}, seed={seed})")
        streams.all()
        restarts.check()
        installs = sum(1 for e in c.trace if e.kind == "install")
        snapshots_in_streams = sum(1 for i in range(3) for m in c.applied(i) if m.snapshot_valid)
        last = max(m.command_index for i in range(3) for m in c.applied(i) if m.command_valid)
        return {"peak": peak, "installs": installs, "restarts": restarts.restarts_from_snapshot,
                "stream_snapshots": snapshots_in_streams, "last": last, "seed": seed}


@pytest.mark.parametrize("seed", CHEAP_SEEDS)
def test_snapshot_basic(seed):
    """TestSnapshotBasic3D ("snapshots basic"): 30 rounds of 5-14 Starts and
    one() on all 3; every 10th index the service snapshots; the persisted
    Raft state must stay small; nobody ever needs an InstallSnapshot.

    Catches: index translation off by one after trimming (term_at/entry with
    the snapshot offset), the log not actually trimmed or the snapshot stored
    inside the Raft state ("Log size too large"), deadlock when the service
    calls snapshot() from the apply path while Raft holds its lock."""
    r = run_snapcommon(seed, disconnect=False, reliable=True, crash=False)
    # 1 + 30 one()s + at least 5 Starts in each of the 20 rounds whose sender is the leader
    assert r["last"] >= 131, f"only {r['last']} commands applied (seed={seed})"
    assert r["installs"] == 0, f"{r['installs']} InstallSnapshots, but every follower was up to date (seed={seed})"


@pytest.mark.parametrize("seed", SEEDS)
def test_snapshot_install(seed):
    """TestSnapshotInstall3D ("install snapshots (disconnect)"): 30 rounds
    where a victim (a follower, every third round the leader) is
    disconnected while 5-14 entries and a snapshot go by, then reconnected:
    it is behind the leader's snapshot and needs InstallSnapshot.

    Catches: the leader not sending InstallSnapshot when the follower needs
    compacted entries; the follower not delivering the snapshot on the apply
    stream with snapshot_index = the encoded index, or not continuing at
    exactly last_included_index + 1; trim-versus-keep of the follower's
    suffix."""
    r = run_snapcommon(seed, disconnect=True, reliable=True, crash=False)
    assert r["installs"] > 0, f"no InstallSnapshot was ever installed (seed={seed})"


@pytest.mark.parametrize("seed", SEEDS)
def test_snapshot_install_unreliable(seed):
    """TestSnapshotInstallUnreliable3D ("install snapshots
    (disconnect+unreliable)"): as install (disconnect) with 10 % request and
    reply drops and reordering.

    Catches: stale or duplicate InstallSnapshot RPCs moving the service
    backwards ("Take care that these snapshots only advance the service's
    state"), a reordered older snapshot discarding newer log entries,
    nextIndex/matchIndex bookkeeping after an InstallSnapshot reply."""
    r = run_snapcommon(seed, disconnect=True, reliable=False, crash=False)
    assert r["installs"] > 0, f"no InstallSnapshot was ever installed (seed={seed})"


@pytest.mark.parametrize("seed", SEEDS)
def test_snapshot_install_crash(seed):
    """TestSnapshotInstallCrash3D ("install snapshots (crash)"): the victim
    crashes instead of disconnecting and restarts from what it persisted.

    Catches: the snapshot or last_included_index/term not persisted together
    with the state (Save(state, nil) erasing the snapshot), commit_index /
    last_applied not initialized from the snapshot on restart (re-applying
    from 1: "apply out of order"), the restored snapshot not delivered first."""
    r = run_snapcommon(seed, disconnect=False, reliable=True, crash=True)
    assert r["restarts"] > 0, f"no node ever restarted from a snapshot (seed={seed})"


@pytest.mark.parametrize("seed", SEEDS)
def test_snapshot_install_unreliable_crash(seed):
    """TestSnapshotInstallUnCrash3D ("install snapshots (unreliable+crash)"):
    crash-restart victims on an unreliable network.

    Catches: the crash-variant bugs plus stale InstallSnapshot/AppendEntries
    replies after a restart, a snapshot reply from a dead incarnation
    advancing matchIndex."""
    r = run_snapcommon(seed, disconnect=False, reliable=False, crash=True)
    assert r["restarts"] > 0, f"no node ever restarted from a snapshot (seed={seed})"


@pytest.mark.parametrize("seed", CHEAP_SEEDS)
def test_snapshot_all_crash(seed):
    """TestSnapshotAllCrash3D ("crash and restart all servers", unreliable as
    in 2025): 5 times: 5-14 one()s, crash all 3, restart all 3, and the next
    one() must land at a higher index than before the crash.

    Catches: "index decreased" when the restarted cluster forgets its tail
    (log suffix or lastIncludedIndex not persisted), restarted servers
    re-applying from 1 instead of from the snapshot."""
    rng = random.Random(seed)
    servers = 3
    with raftkit.Cluster(servers, seed=seed, snapshot_interval=SNAPSHOT_INTERVAL) as c:
        c.set_reliable(False)
        streams = StreamChecker(c, seed)
        restarts = RestartWatch(c, streams, seed)
        c.one(rand_int(rng), servers, True)
        for _ in range(5):
            # perhaps enough to get a snapshot
            nn = SNAPSHOT_INTERVAL // 2 + rng.randrange(SNAPSHOT_INTERVAL)
            for _ in range(nn):
                c.one(rand_int(rng), servers, True)
            index1 = c.one(rand_int(rng), servers, True)
            for i in range(servers):  # crash all
                restarts.crash(i)
            for i in range(servers):  # revive all
                restarts.restart(i)
                c.connect(i)
            index2 = c.one(rand_int(rng), servers, True)
            assert index2 >= index1 + 1, f"index decreased from {index1} to {index2} (seed={seed})"
            streams.all()
            restarts.check()
            assert log_size(c) < MAX_LOG_BYTES, f"Log size too large: {log_size(c)} (seed={seed})"
        assert restarts.restarts_from_snapshot > 0, f"no restart from a snapshot (seed={seed})"


@pytest.mark.parametrize("seed", CHEAP_SEEDS)
def test_snapshot_init(seed):
    """TestSnapshotInit3D ("snapshot initialization after crash", unreliable
    as in 2025): 12 commits (one snapshot at 10 on every server), crash and
    restart all, one op (its persist rewrites state and snapshot together),
    crash and restart all again, one more op.

    Catches: a restarted server not loading its snapshot into memory, so
    the next persist (which rewrites both parts) saves an empty snapshot and
    the second restart loses everything up to index 10."""
    rng = random.Random(seed)
    servers = 3
    with raftkit.Cluster(servers, seed=seed, snapshot_interval=SNAPSHOT_INTERVAL) as c:
        c.set_reliable(False)
        streams = StreamChecker(c, seed)
        restarts = RestartWatch(c, streams, seed)
        c.one(rand_int(rng), servers, True)
        # enough ops to make a snapshot
        for _ in range(SNAPSHOT_INTERVAL + 1):
            c.one(rand_int(rng), servers, True)
        for i in range(servers):  # crash all
            restarts.crash(i)
        for i in range(servers):  # restart all
            restarts.restart(i)
            c.connect(i)
        # a single op, to get something to be written back to persistent storage
        c.one(rand_int(rng), servers, True)
        streams.all()
        restarts.check()
        for i in range(servers):
            restarts.crash(i)
        for i in range(servers):
            restarts.restart(i)
            c.connect(i)
        # do another op to trigger potential bug
        index = c.one(rand_int(rng), servers, True)
        assert index == 14, f"the last op landed at {index}, expected 14 (seed={seed})"
        streams.all()
        restarts.check()
        assert restarts.restarts_from_snapshot == 2 * servers, (
            f"{restarts.restarts_from_snapshot} of 6 restarts came back from a snapshot (seed={seed})")
        for i in range(servers):
            first = c.applied(i)[0]
            assert first.snapshot_valid and first.snapshot_index == SNAPSHOT_INTERVAL, (
                f"node {i}: after the second restart its stream starts with {first} (seed={seed})")


@pytest.mark.parametrize("seed, crash", [(1, False), (2, False), (1, True), (2, True)])
def test_snapshot_install_duplicates(seed, crash):
    """Not in MIT: snapcommon (disconnect or crash) on a network that also
    delivers 30 % of requests twice, on top of MIT's unreliable drops and
    0-26 ms reordering, so followers see duplicated and out-of-order
    InstallSnapshot and AppendEntries.

    Catches: a duplicate or older InstallSnapshot re-installed after newer
    entries were applied (the service moving backwards, or the log suffix
    discarded under a commit), commit_index/last_applied going backwards."""
    rng = random.Random(seed)
    with raftkit.Cluster(3, seed=seed, snapshot_interval=SNAPSHOT_INTERVAL) as c:
        c.set_network(request_drop=0.1, reply_drop=0.1, delay=(0.0, 0.026), duplicate=0.3)
        streams = StreamChecker(c, seed)
        restarts = RestartWatch(c, streams, seed)
        for it in snapcommon(c, rng, disconnect=not crash, crash=crash, streams=streams, restarts=restarts):
            assert log_size(c) < MAX_LOG_BYTES, f"Log size too large: {log_size(c)} at {it} (seed={seed})"
        streams.all()
        restarts.check()
        dups = sum(1 for e in c.trace if e.kind == "duplicate" and e.detail.startswith("InstallSnapshot"))
        assert dups > 0, f"no InstallSnapshot was ever duplicated (seed={seed})"


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_snapshot_survives_new_cluster_on_disk(seed, tmp_path):
    """With data_dir, a new Cluster on the same folder (as after a process
    restart) starts every node from its snapshot: each stream begins with a
    snapshot at the persisted last_included_index whose contents are the
    commands the first cluster applied, and the next command lands after
    everything committed before.

    Catches: the snapshot not written to disk with the state (or written
    as an empty snapshot), last_included_index/term not persisted."""
    rng = random.Random(seed)
    servers = 3
    with raftkit.Cluster(servers, seed=seed, snapshot_interval=SNAPSHOT_INTERVAL, data_dir=tmp_path) as c:
        streams = StreamChecker(c, seed)
        for _ in range(SNAPSHOT_INTERVAL + 2):
            last = c.one(rand_int(rng), servers, True)
        c.run_for(0.2)  # let the commit of the last entry reach every follower
        applied = [streams.node(i)[1] for i in range(servers)]
        liis = [c.nodes[i].last_included_index for i in range(servers)]
    assert liis == [SNAPSHOT_INTERVAL] * servers, f"snapshot points {liis} (seed={seed})"
    with raftkit.Cluster(servers, seed=seed + 100, snapshot_interval=SNAPSHOT_INTERVAL, data_dir=tmp_path) as c:
        assert [c.nodes[i].last_included_index for i in range(servers)] == liis
        index = c.one(rand_int(rng), servers, True)
        assert index == last + 1, f"the first command after the restart landed at {index}, not {last + 1} (seed={seed})"
        streams = StreamChecker(c, seed)
        for i in range(servers):
            msgs = c.applied(i)
            assert msgs[0].snapshot_valid and msgs[0].snapshot_index == liis[i], (
                f"node {i}: the new cluster's stream starts with {msgs[0]} (seed={seed})")
            state = decode_snapshot(msgs[0], i, seed)
            assert state == {k: v for k, v in applied[i].items() if k <= liis[i]}, (
                f"node {i}: the snapshot on disk does not hold what it applied (seed={seed})")
            last_i, _ = streams.node(i)
            assert last_i == index


# ---------------------------------------------------------------------------
# The size bound: measured, and shown to discriminate
# ---------------------------------------------------------------------------

class NeverTrims(raftkit.ConsensusModule):
    """A node whose snapshot() does nothing: its log is never trimmed."""

    def snapshot(self, index, data):
        pass


def test_persisted_entry_cost():
    """The per-entry cost the bound is derived from, measured on a real node:
    appending rand.Int() entries grows persisted_size by exactly their
    pickles, ENTRY_BYTES (26) each for a full 63-bit int, and the header stays
    under HEADER_BYTES_MAX."""
    rng = random.Random(1)
    with raftkit.Cluster(3, seed=1, config=Config(election_timeout=(5, 6))) as c:
        n = c.nodes[1]
        n.append_entries(AppendEntriesArgs(1, 0, 0, 0, [LogEntry(1, 2**62)], 0))
        one = c.persisted_size(1)
        assert one - ENTRY_BYTES <= HEADER_BYTES_MAX, f"header is {one - ENTRY_BYTES} bytes"
        entries = [LogEntry(1, rand_int(rng)) for _ in range(50)]
        n.append_entries(AppendEntriesArgs(1, 0, 1, 1, entries, 0))
        grown = c.persisted_size(1) - one
        costs = [len(pickle.dumps((e.term, e.command), protocol=pickle.HIGHEST_PROTOCOL)) for e in entries]
        assert grown == sum(costs), f"50 entries cost {grown} bytes, their pickles {sum(costs)}"
        assert max(costs) == ENTRY_BYTES == 26 and min(costs) >= 20, costs


@pytest.mark.parametrize("seed", [1])
def test_log_size_bound_discriminates(seed):
    """The bound is not vacuous: the basic snapshot scenario with a node
    class whose snapshot() does nothing (the classic "log not actually
    trimmed" bug) exceeds MAX_LOG_BYTES, while everything else still works.
    Stops at the first iteration that exceeds it."""
    rng = random.Random(seed)
    with raftkit.Cluster(3, seed=seed, snapshot_interval=SNAPSHOT_INTERVAL, node_class=NeverTrims) as c:
        streams = StreamChecker(c, seed)
        restarts = RestartWatch(c, streams, seed)
        exceeded = None
        for it in snapcommon(c, rng, disconnect=False, crash=False, streams=streams, restarts=restarts):
            if log_size(c) >= MAX_LOG_BYTES:
                exceeded = it
                break
        assert exceeded is not None, (
            f"an untrimmed log stayed under {MAX_LOG_BYTES} bytes for 30 iterations (seed={seed})")
        last = max(m.command_index for m in c.applied(0) if m.command_valid)
        # entries in an untrimmed log = every index so far; the header is small
        assert log_size(c) >= last * ENTRY_BYTES, f"{log_size(c)} bytes for {last} entries (seed={seed})"
        assert exceeded <= 10, f"crossed the bound only at iteration {exceeded} (seed={seed})"


# ---------------------------------------------------------------------------
# Stream checker self-test (so a silent checker cannot pass everything)
# ---------------------------------------------------------------------------

def _snap(index, term=1):
    return ApplyMsg(False, None, 0, True, pickle.dumps({k: k * 10 for k in range(1, index + 1)}), term, index)


def _cmd(index):
    return ApplyMsg(True, index * 10, index)


def test_stream_checker_rejects_bad_streams():
    """check_apply_stream accepts the legal shapes and rejects each illegal one."""
    good = [
        [_cmd(1), _cmd(2), _cmd(3)],
        [_snap(10), _cmd(11), _cmd(12)],
        [_cmd(1), _cmd(2), _snap(20), _cmd(21)],
        [_snap(10), _cmd(11), _snap(30), _cmd(31)],
    ]
    for msgs in good:
        check_apply_stream(msgs, 0, 0, {})
    bad = [
        [_cmd(2)],                                  # does not start at 1
        [_cmd(1), _cmd(3)],                         # gap
        [_cmd(1), _cmd(2), _cmd(2)],                # duplicate
        [_snap(10), _cmd(12)],                      # does not continue at 11
        [_snap(10), _cmd(1)],                       # re-applies from 1 after a restart
        [_cmd(1), _cmd(2), _cmd(3), _snap(3)],      # snapshot not newer
        [_snap(10), _cmd(11), _snap(5), _cmd(6)],   # snapshot backwards
        [ApplyMsg(False, None, 0, True, pickle.dumps({1: 10}), 1, 2)],  # data != index
        [ApplyMsg(True, 10, 1, True, _snap(1).snapshot, 1, 1)],         # both flags
    ]
    for msgs in bad:
        with pytest.raises(AssertionError):
            check_apply_stream(msgs, 0, 0, {})
    agreed = {}
    check_apply_stream([_cmd(1)], 0, 0, agreed)
    with pytest.raises(AssertionError):
        check_apply_stream([ApplyMsg(True, "other", 1)], 1, 0, agreed)


# ---------------------------------------------------------------------------
# White-box tests of the handlers, cluster frozen
# ---------------------------------------------------------------------------
#
# Nothing runs between calls under the virtual clock, and with
# election_timeout=(5, 6) nobody starts an election during the few
# milliseconds the tests let the cluster run. Node 1 plays a follower of a
# (pretend) leader 0; snapshot_interval=None, so only the test snapshots.

FROZEN = Config(election_timeout=(5, 6))
TERMS = [1, 1, 2, 2, 3, 3, 3, 3]  # terms of entries 1..8


def snap_data(index: int) -> bytes:
    """What the built-in service would hand over at ``index`` for the log below."""
    return pickle.dumps({i: i * 10 for i in range(1, index + 1)}, protocol=pickle.HIGHEST_PROTOCOL)


def entry_bytes(first: int, last: int) -> int:
    """Persisted size of entries first..last of ``entries()`` (see _encoded_log)."""
    return sum(len(pickle.dumps((e.term, e.command), protocol=pickle.HIGHEST_PROTOCOL))
               for e in entries(first, last))


def entries(first: int, last: int, terms=TERMS) -> list:
    return [LogEntry(terms[i - 1], i * 10) for i in range(first, last + 1)]


def follower_with_log(c: raftkit.Cluster, commit: int) -> raftkit.ConsensusModule:
    """Node 1 holding entries 1..8 (terms TERMS), commit_index = ``commit``."""
    n = c.nodes[1]
    reply = n.append_entries(AppendEntriesArgs(3, 0, 0, 0, entries(1, 8), commit))
    assert reply.success
    assert (n.current_term, n.commit_index, n.last_log_index()) == (3, commit, 8)
    return n


def fields(n: raftkit.ConsensusModule) -> tuple:
    with n.mu:
        return (n.last_included_index, n.last_included_term, [e.term for e in n.log],
                n.commit_index, n.last_applied, n.last_log_index(), n.last_log_term())


def test_install_snapshot_stale_is_ignored():
    """An InstallSnapshot whose last_included_index <= commit_index is
    ignored: log, snapshot point, commit/applied and the apply stream stay as
    they are (it would move the service backwards). Also: an older term's
    InstallSnapshot is refused with the current term."""
    with raftkit.Cluster(3, seed=1, config=FROZEN) as c:
        n = follower_with_log(c, commit=5)
        before = fields(n)
        size = c.persisted_size(1)
        for lii in (3, 5):  # strictly below and equal to commit_index
            reply = n.install_snapshot(InstallSnapshotArgs(3, 0, lii, TERMS[lii - 1], snap_data(lii)))
            assert reply.term == 3
            assert fields(n) == before, f"stale InstallSnapshot at {lii} changed {before} into {fields(n)}"
            assert n.snapshot_data == b""
        reply = n.install_snapshot(InstallSnapshotArgs(2, 0, 7, 3, snap_data(7)))  # old term
        assert reply.term == 3 and fields(n) == before
        assert c.persisted_size(1) == size
        c.run_for(0.05)
        msgs = c.applied(1)
        assert [m.command_index for m in msgs] == [1, 2, 3, 4, 5] and not any(m.snapshot_valid for m in msgs)


def test_install_snapshot_keeps_matching_suffix():
    """last_included_index inside the follower's log with a matching term:
    the entries after it are kept (Figure 13 step 6), commit/applied jump to
    it, the service gets the snapshot first and then continues at
    last_included_index + 1; the whole thing is persisted."""
    with raftkit.Cluster(3, seed=1, config=FROZEN) as c:
        n = follower_with_log(c, commit=4)
        data = snap_data(6)
        n.install_snapshot(InstallSnapshotArgs(3, 0, 6, 3, data))
        assert fields(n) == (6, 3, [3, 3], 6, 6, 8, 3)
        with n.mu:
            assert n.term_at(6) == 3 and n.term_at(7) == 3 and n.entry(8).command == 80
            assert n.snapshot_data == data
        # Still frozen, so the applier has delivered nothing yet: the leader's
        # heartbeat at prev=8 commits the kept suffix. The applier must hand
        # over the snapshot first, then 7 and 8 (never 1..4, which it had not
        # applied yet but which are now inside the snapshot).
        assert n.append_entries(AppendEntriesArgs(3, 0, 8, 3, [], 8)).success
        assert (n.commit_index, n.last_applied) == (8, 6)
        c.run_for(0.01)
        msgs = c.applied(1)
        check_apply_stream(msgs, 1, 0)
        assert msgs[0].snapshot_valid and (msgs[0].snapshot_index, msgs[0].snapshot_term) == (6, 3)
        assert msgs[0].snapshot == data
        assert [m.command_index for m in msgs[1:]] == [7, 8]
        # persisted: a restart comes back with the same snapshot point and suffix
        c.restart(1)
        m = c.nodes[1]
        assert (m.last_included_index, m.last_included_term, [e.term for e in m.log]) == (6, 3, [3, 3])
        assert (m.commit_index, m.last_applied, m.snapshot_data) == (6, 6, data)
        c.run_for(0.01)
        assert c.applied(1)[0] == ApplyMsg(False, None, 0, True, data, 3, 6)


@pytest.mark.parametrize("lii, lit, why", [
    (6, 4, "term mismatch at the snapshot index"),
    (12, 4, "snapshot beyond the end of the log"),
])
def test_install_snapshot_discards_log(lii, lit, why):
    """Otherwise (the entry at last_included_index has another term, or the
    log is shorter) the whole log is discarded (Figure 13 step 7) and the
    log now ends at the snapshot."""
    with raftkit.Cluster(3, seed=1, config=FROZEN) as c:
        n = follower_with_log(c, commit=4)
        data = snap_data(lii)
        reply = n.install_snapshot(InstallSnapshotArgs(4, 0, lii, lit, data))
        assert reply.term == 4
        assert fields(n) == (lii, lit, [], lii, lii, lii, lit), why
        with n.mu:
            assert n.term_at(lii) == lit
        c.run_for(0.01)
        msgs = c.applied(1)
        check_apply_stream(msgs, 1, 0)
        assert msgs == [ApplyMsg(False, None, 0, True, data, lit, lii)], why
        # the next AppendEntries continues right after the snapshot
        assert n.append_entries(AppendEntriesArgs(4, 0, lii, lit, [LogEntry(4, "x")], lii + 1)).success
        c.run_for(0.01)
        assert c.applied(1)[-1] == ApplyMsg(True, "x", lii + 1)


def test_snapshot_trims_log_and_index_helpers_still_work():
    """snapshot(index, data) drops entries up to index, remembers its term,
    persists data as the snapshot and shrinks the persisted state;
    term_at/entry/last_log_index/last_log_term still translate indexes; a
    second snapshot at or below the first is a no-op."""
    with raftkit.Cluster(3, seed=1, config=FROZEN) as c:
        n = follower_with_log(c, commit=8)
        c.run_for(0.01)
        assert n.last_applied == 8
        size = c.persisted_size(1)
        data = snap_data(5)
        n.snapshot(5, data)
        assert fields(n) == (5, 3, [3, 3, 3], 8, 8, 8, 3)
        with n.mu:
            assert [n.term_at(i) for i in (5, 6, 7, 8)] == [3, 3, 3, 3]
            assert [n.entry(i).command for i in (6, 7, 8)] == [60, 70, 80]
            with pytest.raises(IndexError):
                n.term_at(4)
        assert c.persisted_size(1) == size - entry_bytes(1, 5)
        n.snapshot(3, b"older")   # at or below the snapshot point: nothing happens
        n.snapshot(5, b"same")
        assert fields(n) == (5, 3, [3, 3, 3], 8, 8, 8, 3) and n.snapshot_data == data
        data = snap_data(8)
        n.snapshot(8, data)       # the whole log
        assert fields(n) == (8, 3, [], 8, 8, 8, 3)
        with n.mu:
            assert n.term_at(8) == 3
        # the leader's next entries attach after the snapshot
        assert n.append_entries(AppendEntriesArgs(3, 0, 8, 3, [LogEntry(3, 90)], 9)).success
        assert (n.last_log_index(), n.commit_index) == (9, 9)
        c.restart(1)
        m = c.nodes[1]
        assert (m.last_included_index, m.last_included_term, m.snapshot_data) == (8, 3, data)
        assert [e.command for e in m.log] == [90]


def test_snapshot_beyond_last_applied_raises():
    """snapshot(index, data) for an index not yet applied is a service bug:
    ValueError, and nothing changes. Non-bytes data is a TypeError."""
    with raftkit.Cluster(3, seed=1, config=FROZEN) as c:
        n = follower_with_log(c, commit=8)  # committed, but the applier has not run yet
        assert n.last_applied == 0
        before = fields(n)
        with pytest.raises(ValueError):
            n.snapshot(3, snap_data(3))
        assert fields(n) == before
        c.run_for(0.01)
        assert n.last_applied == 8
        with pytest.raises(ValueError):
            n.snapshot(9, snap_data(9))
        with pytest.raises(TypeError):
            n.snapshot(4, "not bytes")
        assert fields(n)[:3] == (0, 0, TERMS)


@pytest.mark.parametrize("prev, first, last, commit, why", [
    (3, 4, 10, 10, "overlaps the snapshot and extends the log"),
    (2, 3, 5, 5, "entirely inside the snapshot"),
    (0, 1, 8, 8, "the whole log again, from index 0"),
    (4, 5, 7, 6, "ends inside the kept suffix"),
])
def test_append_entries_prev_inside_snapshot(prev, first, last, commit, why):
    """AppendEntries whose prev_log_index is inside the snapshot (a delayed or
    retried request): the entries that overlap the snapshot are skipped, the
    rest is checked/appended as usual, nothing is duplicated or truncated,
    the reply is success, and commit_index never goes backwards."""
    terms = TERMS + [4, 4]
    with raftkit.Cluster(3, seed=1, config=FROZEN) as c:
        n = follower_with_log(c, commit=6)
        c.run_for(0.01)
        n.snapshot(5, snap_data(5))
        assert fields(n) == (5, 3, [3, 3, 3], 6, 6, 8, 3)
        args = AppendEntriesArgs(4, 0, prev, terms[prev - 1] if prev else 0, entries(first, last, terms), commit)
        reply = n.append_entries(args)
        assert reply.success, f"{why}: {reply}"
        expected_last = max(8, last)
        with n.mu:
            assert n.last_included_index == 5
            assert n.last_log_index() == expected_last, why
            assert [e.command for e in n.log] == [i * 10 for i in range(6, expected_last + 1)], why
            assert [e.term for e in n.log] == terms[5:expected_last], why
            assert n.commit_index == max(6, min(commit, last)), why
        c.run_for(0.01)
        check_apply_stream(c.applied(1), 1, 0)
