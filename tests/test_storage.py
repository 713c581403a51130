"""Persisted state: MemoryStorage, FileStorage, and a Cluster on a data_dir.

What must hold (storage.py, API.md ``data_dir``):

* ``save(state, snapshot)`` replaces both at once; ``snapshot=None`` keeps
  the saved snapshot; reads return exactly what was saved.
* ``detach()`` is the crash: every later write through that object is lost;
  ``reopen()`` is the restart: a fresh object over the persisted contents.
* ``FileStorage`` is atomic and durable: write a temp file, fsync it,
  rename it over the old one, fsync the directory. A crash at any moment
  leaves the old or the new contents, never a mix; a new process reads
  them back; a damaged file is refused with a clear ``ValueError``.
* A ``Cluster`` on a ``data_dir`` can be stopped and a new one (also in a
  new process) recovers every node's term, vote and log, then goes on
  committing.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import struct
from pathlib import Path

import pytest

import raftkit
from raftkit import storage as storage_mod
from raftkit.storage import FileStorage, MemoryStorage

SEEDS = [1, 2]


def storages(tmp_path):
    """One fresh storage of each kind."""
    return {"memory": MemoryStorage(), "file": FileStorage(tmp_path / "node.raft")}


KINDS = ["memory", "file"]


# ================================================================ both kinds
@pytest.mark.parametrize("kind", KINDS)
def test_fresh_storage_is_empty(tmp_path, kind):
    """A storage with nothing saved reads as empty state and empty snapshot."""
    s = storages(tmp_path)[kind]
    assert (s.read_state(), s.read_snapshot(), s.state_size(), s.snapshot_size()) == (b"", b"", 0, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_save_read_round_trip(tmp_path, kind):
    """What was saved is read back exactly, with matching sizes; a later
    save replaces both parts."""
    s = storages(tmp_path)[kind]
    s.save(b"state-1", b"snapshot-1")
    assert (s.read_state(), s.read_snapshot()) == (b"state-1", b"snapshot-1")
    assert (s.state_size(), s.snapshot_size()) == (7, 10)
    blob = bytes(range(256)) * 4
    s.save(blob, b"\x00snap\xff")
    assert (s.read_state(), s.read_snapshot()) == (blob, b"\x00snap\xff")


@pytest.mark.parametrize("kind", KINDS)
def test_save_without_snapshot_keeps_it(tmp_path, kind):
    """save(state, None) (and save(state)) replace the state and keep the
    saved snapshot; an explicit b"" does replace it."""
    s = storages(tmp_path)[kind]
    s.save(b"s1", b"snap")
    s.save(b"s2", None)
    assert (s.read_state(), s.read_snapshot()) == (b"s2", b"snap")
    s.save(b"s3")
    assert (s.read_state(), s.read_snapshot()) == (b"s3", b"snap")
    assert (s.reopen().read_state(), s.reopen().read_snapshot()) == (b"s3", b"snap")
    s.save(b"s4", b"")
    assert (s.read_state(), s.read_snapshot()) == (b"s4", b"")


@pytest.mark.parametrize("kind", KINDS)
def test_saved_bytes_are_a_copy(tmp_path, kind):
    """A bytearray is accepted and copied: changing it after save does not
    change what is persisted."""
    s = storages(tmp_path)[kind]
    state, snap = bytearray(b"abc"), bytearray(b"xyz")
    s.save(state, snap)
    state[0], snap[0] = ord("Z"), ord("Z")
    assert (s.read_state(), s.read_snapshot()) == (b"abc", b"xyz")
    assert isinstance(s.read_state(), bytes) and isinstance(s.read_snapshot(), bytes)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("state, snapshot", [("text", None), (b"ok", "text"), (None, None), ([1, 2], b"")])
def test_save_rejects_non_bytes(tmp_path, kind, state, snapshot):
    """Only bytes (or None for the snapshot) can be saved; a refused save
    changes nothing."""
    s = storages(tmp_path)[kind]
    s.save(b"before", b"snap")
    with pytest.raises(TypeError):
        s.save(state, snapshot)
    assert (s.read_state(), s.read_snapshot()) == (b"before", b"snap")


@pytest.mark.parametrize("kind", KINDS)
def test_detach_drops_later_writes(tmp_path, kind):
    """After detach() (a crash) saves through that object are silently
    lost: neither it nor a reopened storage sees them."""
    s = storages(tmp_path)[kind]
    s.save(b"persisted", b"snap")
    s.detach()
    s.save(b"too late", b"too late")
    assert (s.read_state(), s.read_snapshot()) == (b"persisted", b"snap")
    r = s.reopen()
    assert (r.read_state(), r.read_snapshot()) == (b"persisted", b"snap")


@pytest.mark.parametrize("kind", KINDS)
def test_reopen_sees_persisted_and_is_writable(tmp_path, kind):
    """reopen() (a restart) gives a fresh, attached object over the
    persisted contents; its writes persist, the dead object's do not."""
    s = storages(tmp_path)[kind]
    s.save(b"v1", b"snap1")
    s.detach()
    r = s.reopen()
    assert r is not s
    r.save(b"v2")
    assert (r.read_state(), r.read_snapshot()) == (b"v2", b"snap1")
    s.save(b"ghost")
    again = r.reopen()
    assert (again.read_state(), again.read_snapshot()) == (b"v2", b"snap1")


@pytest.mark.parametrize("kind", KINDS)
def test_save_log_reads_back_as_save_would(tmp_path, kind):
    """save_log(header, log, unchanged) stores header + log, whatever
    ``unchanged`` claims that is not true (a cut log, a save() in between,
    bytes that differ): a wrong promise costs a full copy, never data. A
    reopened storage (the restart) reads the same bytes."""
    s = storages(tmp_path)[kind]
    log = bytearray(b"entry-1|")
    s.save_log(b"H1", log, 0, b"snap")
    assert (s.read_state(), s.read_snapshot(), s.state_size()) == (b"H1entry-1|", b"snap", 10)
    saved = len(log)
    log += b"entry-2|entry-3|"
    s.save_log(b"H2", log, saved)  # only the two new entries are copied; the snapshot stays
    assert (s.read_state(), s.read_snapshot()) == (b"H2entry-1|entry-2|entry-3|", b"snap")
    del log[8:]  # a follower cut its log at entry 2 and appended another
    log += b"other-2|"
    s.save_log(b"H3", log, 8, b"snap2")
    assert (s.read_state(), s.read_snapshot()) == (b"H3entry-1|other-2|", b"snap2")
    s.save_log(b"H4", b"XXXXXXXX" + log[8:], 16)  # a false promise: the first bytes changed
    assert s.read_state() == b"H4XXXXXXXXother-2|"
    s.save(b"plain")
    s.save_log(b"H5", log, len(log))  # after save() nothing of the log is held
    assert (s.read_state(), s.state_size()) == (b"H5entry-1|other-2|", 18)
    s.detach()
    s.save_log(b"H6", log + b"lost|", len(log))
    r = s.reopen()
    assert (s.read_state(), r.read_state(), r.read_snapshot()) == (b"H5entry-1|other-2|",) * 2 + (b"snap2",)


@pytest.mark.parametrize("unchanged", [-1, 99, 1.5, True, "3"])
def test_save_log_rejects_a_bad_unchanged(unchanged):
    """``unchanged`` must be an int within the log; anything else is a clear
    ValueError, and nothing is saved."""
    s = MemoryStorage()
    s.save(b"kept")
    with pytest.raises(ValueError, match="unchanged"):
        s.save_log(b"H", b"log", unchanged)
    assert s.read_state() == b"kept"


@pytest.mark.parametrize("seed", SEEDS)
def test_raft_state_through_save_log_equals_a_whole_save(seed):
    """A node persists through save_log (only new log bytes are copied): after
    commits, a truncating follower, a crash and a restart, what every storage
    holds is exactly the whole-state encoding persist() would save at once."""
    with raftkit.Cluster(3, seed=seed) as c:
        for k in range(20):
            c.one(k, 3)
        old = c.check_one_leader()
        c.disconnect(old)
        for k in range(3):
            c.submit(f"never committed {k}", node=old)  # entries the old leader must later drop
        for k in range(5):
            c.one(f"while away {k}", 2)
        c.connect(old)
        c.one("all", 3, retry=True)
        f = old
        c.crash(f)
        c.restart(f)
        c.one("again", 3, retry=True)
        for i in range(3):
            node = c.nodes[i]
            with node.mu:
                whole = pickle.dumps((node.current_term, node.voted_for, node.last_included_index,
                                      node.last_included_term, len(node.log)), protocol=pickle.HIGHEST_PROTOCOL)
                whole += b"".join(pickle.dumps((e.term, e.command), protocol=pickle.HIGHEST_PROTOCOL)
                                  for e in node.log)
                assert c._storages[i].read_state() == whole, f"seed={seed}: node {i}'s storage differs"


# ================================================================ FileStorage
def test_file_layout_and_fresh_object_reads_it(tmp_path):
    """One file: magic, lengths, checksum, state, snapshot. A new
    FileStorage on the path reads it back; the parent folder is created."""
    path = tmp_path / "a" / "b" / "node.raft"
    s = FileStorage(path)
    s.save(b"STATE", b"SNAP")
    blob = path.read_bytes()
    assert blob == FileStorage.encode(b"STATE", b"SNAP")
    assert blob.startswith(b"RAFTKIT1") and blob.endswith(b"STATESNAP")
    assert len(blob) == FileStorage.HEADER_SIZE + 9
    t = FileStorage(path)
    assert (t.read_state(), t.read_snapshot()) == (b"STATE", b"SNAP")
    assert not Path(str(path) + ".tmp").exists(), "the temp file must be renamed away"


def test_file_detach_leaves_disk_untouched(tmp_path):
    """A detached FileStorage does not touch the file at all."""
    path = tmp_path / "node.raft"
    s = FileStorage(path)
    s.save(b"kept", b"snap")
    before = path.read_bytes(), path.stat().st_mtime_ns
    s.detach()
    s.save(b"lost", b"lost")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert not Path(str(path) + ".tmp").exists()


def test_file_write_is_fsynced_before_rename_then_directory(tmp_path, monkeypatch):
    """Durability order: the temp file is fsync'd before it is renamed over
    the old file, and the directory is fsync'd after the rename (else a
    power cut could lose the rename or expose an empty file)."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        return real_fsync(fd)

    def replace(src, dst):
        calls.append("replace")
        return real_replace(src, dst)

    s = FileStorage(tmp_path / "node.raft")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    s.save(b"x", b"y")
    assert calls == ["fsync-file", "replace", "fsync-dir"], f"calls were {calls}"


@pytest.mark.parametrize("fail_at", ["fsync", "replace", "write"])
def test_file_crash_mid_write_keeps_old_state(tmp_path, monkeypatch, fail_at):
    """A crash in the middle of save (the fsync of the temp file fails, the
    rename fails, or the write dies half way) leaves the old complete state:
    a fresh FileStorage reads it, and the failing object did not pretend
    the new state was saved."""
    path = tmp_path / "node.raft"
    s = FileStorage(path)
    s.save(b"old-state", b"old-snapshot")

    def boom(*args, **kwargs):
        raise OSError(f"simulated crash in {fail_at}")

    if fail_at == "write":
        real_open = open

        class HalfFile:
            """Writes half of the first chunk, then the process 'dies'."""

            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: max(1, len(data) // 2)])
                self.f.flush()
                boom()

            def __getattr__(self, name):
                return getattr(self.f, name)

        def half_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            return HalfFile(f) if "w" in mode else f

        monkeypatch.setattr(storage_mod, "open", half_open, raising=False)
    else:
        monkeypatch.setattr(os, fail_at, boom)
    with pytest.raises(OSError, match="simulated crash"):
        s.save(b"new-state-much-longer-than-the-old-one", b"new-snapshot")
    monkeypatch.undo()

    fresh = FileStorage(path)
    assert (fresh.read_state(), fresh.read_snapshot()) == (b"old-state", b"old-snapshot"), (
        f"after a crash in {fail_at} the file holds {path.read_bytes()!r}")
    assert (s.read_state(), s.read_snapshot()) == (b"old-state", b"old-snapshot"), (
        "the object reports a state that never reached the disk")


def test_file_leftover_half_tmp_is_ignored_and_overwritten(tmp_path):
    """A half-written temp file from an earlier crash is ignored on open,
    and the next save replaces it cleanly."""
    path = tmp_path / "node.raft"
    FileStorage(path).save(b"good", b"snap")
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(struct.pack(">Q", 1000) + b"half")
    s = FileStorage(path)
    assert (s.read_state(), s.read_snapshot()) == (b"good", b"snap")
    s.save(b"better")
    assert FileStorage(path).read_state() == b"better" and not tmp.exists()


def test_file_process_killed_before_rename_keeps_old_state(tmp_path, run_python):
    """A real process dies (os._exit) after writing and fsyncing the temp
    file but before the rename: the next process reads the old state."""
    path = tmp_path / "node.raft"
    code = (
        "import os, sys\n"
        "from raftkit.storage import FileStorage\n"
        "s = FileStorage(sys.argv[1])\n"
        "s.save(b'old-state', b'old-snap')\n"
        "os.replace = lambda *a: os._exit(17)\n"
        "s.save(b'new-state', b'new-snap')\n"
    )
    run_python(code, path, expect_rc=17)
    s = FileStorage(path)
    assert (s.read_state(), s.read_snapshot()) == (b"old-state", b"old-snap")


@pytest.mark.parametrize("blob, why", [
    (b"", "empty file"),
    (b"\x00\x00\x00", "shorter than the header"),
    (b"RAFTKIT1" + struct.pack(">QQI", 100, 0, 0) + b"only ten b", "state length beyond the end"),
    (b"RAFTKIT1" + struct.pack(">QQI", 2 ** 63, 0, 0) + b"x" * 20, "absurd length"),
    (b"NOTRAFT!" + struct.pack(">QQI", 1, 0, 0) + b"x", "wrong magic"),
    (FileStorage.encode(b"state", b"snap")[:-4] + b"SNAP", "checksum mismatch"),
])
def test_file_truncated_or_corrupt_header_is_a_value_error(tmp_path, blob, why):
    """A main file that cannot be a raftkit state file is refused with a
    ValueError naming the file, instead of being read as garbage."""
    path = tmp_path / "node.raft"
    path.write_bytes(blob)
    with pytest.raises(ValueError) as info:
        FileStorage(path)
    assert str(path) in str(info.value), f"{why}: the message should name the file: {info.value}"


def test_file_truncated_in_snapshot_is_a_value_error(tmp_path):
    """A main file cut short anywhere, also inside the snapshot, is
    refused with a ValueError: loading a silently shortened snapshot would
    restore a state machine from garbage.

    (The file is only ever replaced atomically, so this is disk damage or
    a copy gone wrong, not a crash.)"""
    path = tmp_path / "node.raft"
    FileStorage(path).save(b"state", b"a snapshot of twenty+")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError):
        s = FileStorage(path)
        pytest.fail(f"a truncated file was accepted: snapshot read as {s.read_snapshot()!r}")


def test_file_read_by_a_new_process(tmp_path, run_python):
    """A new interpreter recovers what this one saved, and this one reads
    back what the new one saved."""
    path = tmp_path / "node.raft"
    FileStorage(path).save(b"\x00from parent\xff", b"parent snapshot")
    code = (
        "import sys\n"
        "from raftkit.storage import FileStorage\n"
        "s = FileStorage(sys.argv[1])\n"
        "print(s.read_state().hex(), s.read_snapshot().hex())\n"
        "s.save(b'from child', None)\n"
    )
    out = run_python(code, path).split()
    assert [bytes.fromhex(x) for x in out] == [b"\x00from parent\xff", b"parent snapshot"], out
    s = FileStorage(path)
    assert (s.read_state(), s.read_snapshot()) == (b"from child", b"parent snapshot")


# ================================================================ Cluster on disk
def node_state(c: raftkit.Cluster) -> dict:
    """Every node's persistent Raft state (Figure 2), as plain data."""
    out = {}
    for i, node in enumerate(c.nodes):
        with node.mu:
            out[i] = [node.current_term, node.voted_for, node.last_included_index,
                      [[e.term, e.command] for e in node.log]]
    return out


def applied_commands(c, i):
    return [m.command for m in c.applied(i) if m.command_valid]


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_recovers_from_data_dir(tmp_path, seed):
    """A Cluster on a data_dir commits, is stopped; a new Cluster on the
    same folder starts with every node's term, vote and log as they were,
    commits more at the following indexes, and re-applies the old ones."""
    data = tmp_path / "cluster"
    with raftkit.Cluster(3, seed=seed, data_dir=data) as c:
        for k in range(3):
            assert c.one(f"x{k}", 3) == k + 1, f"seed={seed}: x{k} not at index {k + 1}"
        c.run_for(0.2)
        saved = node_state(c)
    assert sorted(os.listdir(data)) == ["node-0.raft", "node-1.raft", "node-2.raft"], (
        f"seed={seed}: files in data_dir: {os.listdir(data)}")

    with raftkit.Cluster(3, seed=seed + 100, data_dir=data) as c:
        assert node_state(c) == saved, f"seed={seed}: recovered {node_state(c)}, saved {saved}"
        assert c.one("y0", 3) == 4, f"seed={seed}: the first new command must follow the recovered log"
        assert c.one("y1", 3) == 5
        c.run_for(0.2)
        for i in range(3):
            assert applied_commands(c, i) == ["x0", "x1", "x2", "y0", "y1"], (
                f"seed={seed}: node {i} applied {applied_commands(c, i)}")
        terms = {i: c.get_state(i)[0] for i in range(3)}
        assert min(terms.values()) >= max(t for t, *_ in saved.values()), (
            f"seed={seed}: terms went backwards: {saved} -> {terms}")


_CHILD = """
import json, sys
import raftkit
data, seed = sys.argv[1], int(sys.argv[2])
with raftkit.Cluster(3, seed=seed, data_dir=data) as c:
    state = {}
    for i, node in enumerate(c.nodes):
        with node.mu:
            state[i] = [node.current_term, node.voted_for, node.last_included_index,
                        [[e.term, e.command] for e in node.log]]
    index = c.one("from-child", 3)
    c.run_for(0.2)
    applied = {i: [m.command for m in c.applied(i) if m.command_valid] for i in range(3)}
print(json.dumps({"state": state, "index": index, "applied": applied}))
"""


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_recovers_in_a_new_process(tmp_path, run_python, seed):
    """A Cluster in a new interpreter, on the folder this process wrote,
    sees the same terms, votes and logs, commits more; and this process
    then recovers what the child added."""
    data = tmp_path / "cluster"
    with raftkit.Cluster(3, seed=seed, data_dir=data) as c:
        c.one("a", 3)
        c.one("b", 3)
        c.run_for(0.2)
        saved = node_state(c)

    child = json.loads(run_python(_CHILD, data, seed + 1).strip().splitlines()[-1])
    assert {int(k): v for k, v in child["state"].items()} == saved, (
        f"seed={seed}: the child recovered {child['state']}, the parent saved {saved}")
    assert child["index"] == 3, f"seed={seed}: the child's command landed at {child['index']}, want 3"
    for i, cmds in child["applied"].items():
        assert cmds == ["a", "b", "from-child"], f"seed={seed}: child node {i} applied {cmds}"

    with raftkit.Cluster(3, seed=seed + 2, data_dir=data) as c:
        for i, (term, _, _, log) in node_state(c).items():
            assert [cmd for _, cmd in log] == ["a", "b", "from-child"], f"seed={seed}: node {i} log {log}"
            assert term >= saved[i][0], f"seed={seed}: node {i} term went back from {saved[i][0]} to {term}"
        assert c.one("c", 3) == 4


@pytest.mark.parametrize("seed", SEEDS)
def test_cluster_snapshot_survives_on_disk(tmp_path, seed):
    """With snapshot_interval the snapshot is persisted with the state: a
    new Cluster starts each node from it (first applied message is the
    snapshot), persisted_size excludes it, and the file holds both."""
    data = tmp_path / "cluster"
    with raftkit.Cluster(3, seed=seed, snapshot_interval=3, data_dir=data) as c:
        for k in range(7):
            c.one(k, 3)
        c.run_for(0.2)
        saved = node_state(c)
    assert all(s[2] >= 6 for s in saved.values()), f"seed={seed}: no snapshot taken: {saved}"

    with raftkit.Cluster(3, seed=seed, snapshot_interval=3, data_dir=data) as c:
        assert node_state(c) == saved, f"seed={seed}: recovered {node_state(c)}, saved {saved}"
        c.run_for(0.05)
        for i in range(3):
            first = c.applied(i)[0]
            assert first.snapshot_valid and first.snapshot_index == saved[i][2], (
                f"seed={seed}: node {i} started with {first}, want its snapshot at {saved[i][2]}")
            size = (data / f"node-{i}.raft").stat().st_size
            assert size == FileStorage.HEADER_SIZE + c.persisted_size(i) + len(first.snapshot), (
                f"seed={seed}: file {size} bytes != header + state {c.persisted_size(i)} "
                f"+ snapshot {len(first.snapshot)}")
        assert c.one("after", 3) == 8


@pytest.mark.parametrize("seed", SEEDS)
def test_crashed_incarnation_cannot_write_to_disk(tmp_path, seed):
    """Only what a node persisted before it crashed survives: the dead
    incarnation's later persist() calls never reach the file, and the
    restarted node loads the pre-crash state."""
    data = tmp_path / "cluster"
    with raftkit.Cluster(3, seed=seed, data_dir=data) as c:
        leader = c.check_one_leader()
        c.one("kept", 3)
        f = (leader + 1) % 3
        path = data / f"node-{f}.raft"
        before = path.read_bytes()
        dead = c.nodes[f]
        c.crash(f)
        with dead.mu:
            term_then = dead.current_term
            dead.current_term += 50
            dead.persist()
        assert path.read_bytes() == before, f"seed={seed}: a crashed node wrote to {path.name}"
        c.restart(f)
        assert c.nodes[f].current_term == term_then, (
            f"seed={seed}: restarted with term {c.nodes[f].current_term}, persisted {term_then}")
        c.run_for(0.5)
        assert applied_commands(c, f) == ["kept"], f"seed={seed}: node {f} applied {applied_commands(c, f)}"


def test_cluster_corrupt_state_file_is_a_clear_value_error(tmp_path):
    """A node file whose header is fine but whose Raft state is garbage
    makes Cluster(...) raise ValueError naming the file, not a bare
    unpickling error from deep inside the node."""
    data = tmp_path / "cluster"
    with raftkit.Cluster(3, seed=1, data_dir=data) as c:
        c.one("x", 3)
    path = data / "node-0.raft"
    state, snapshot = FileStorage.decode(path.read_bytes())
    path.write_bytes(FileStorage.encode(b"\xff" * len(state), snapshot))  # valid file, garbage state
    with pytest.raises(ValueError) as info:
        with raftkit.Cluster(3, seed=1, data_dir=data):
            pass
    assert "node-0.raft" in str(info.value), f"the message should name the file: {info.value}"
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF  # damaged on disk: the checksum catches it
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="checksum"):
        raftkit.Cluster(3, seed=1, data_dir=data)
