"""The KV scenarios of eliben/raft parts 4 and 5, ported to ``KVCluster``.

Source: github.com/eliben/raft, ``part4kv/system_test.go``,
``part5kv/system_test.go`` (part 5 repeats every part-4 scenario and adds
the Append and exactly-once ones) and ``part5kv/kvservice/datastore_test.go``.
Each test keeps the Go test's name (snake_case), its steps and its sleeps.
A test that appears in both parts is ported once.

=========================================  ==========================================
eliben harness (testharness.go)            here
=========================================  ==========================================
``NewHarness(t, n)``                       ``with KVCluster(n, seed=s) as kv`` + ``Harness``
``sleepMs(x)``                             ``kv.run_for(x / 1000)``
``DisconnectServiceFromPeers(i)``          ``kv.partition``: i loses its Raft peers but
                                           clients still reach it (clients belong to no
                                           partition group), as eliben's HTTP port stays up
``ReconnectServiceToPeers(i)``             the partition without i's group, ``kv.heal()``
                                           once everyone is back
``CrashService(i)`` / ``RestartService``   ``kv.crash(i)`` / ``kv.restart(i)`` (+20 ms)
``NewClient()``                            ``kv.clerk()``
``NewClientSingleService(i)``              a ``Clerk`` whose server list is ``[i]``
``NewClientWithRandomAddrsOrder()``        a ``Clerk`` over the live servers, shuffled
                                           with a seeded RNG
``CheckSingleLeader()``                    ``Harness.check_single_leader``: 8 looks,
                                           150 ms apart, first look at once
``CheckPut/CheckGet/CheckAppend``          the clerk's ``put/get/append`` + assertion
``CheckGetTimesOut`` (300 ms deadline)     clerk timeout 0.3 s, expect ``ClerkTimeout``
``DelayNextHTTPResponseFromService(i)``    ``DelayNextResponseKV``: node i's next
                                           ``kv_request`` answer comes 300 ms late and
                                           the clerk never sees it (it gave up)
``leaktest.CheckTimeout``                  the ``no_leaked_threads`` fixture
=========================================  ==========================================

Differences that matter when reading a failure:

* Our ``put`` returns None and ``append`` returns the *new* value, where
  eliben's return ``(prevValue, keyFound)``. ``test_put_prev_value`` reads
  the key before and after each Put instead; the Append tests check that the
  new value is the old one plus the suffix.
* eliben answers a retried request with ``StatusDuplicateRequest`` (an error
  for the client); our KV store answers it with the original result. So where
  eliben expects an error after a delayed response, we expect the original
  answer (or a ``ClerkTimeout``), and check exactly-once on the data.
* eliben's ``CheckPut``/``CheckGet`` give each operation 500 ms, with 50 ms
  per try before moving to the next server. Our clerk has no per-try timeout:
  it waits for the server's answer (an old, isolated leader answers
  ErrTimeout only after ``KVService.request_timeout`` = 0.5 s). So normal
  operations get the clerk's default timeout, not eliben's 500 ms; only
  ``CheckGetTimesOut`` keeps its 300 ms.
* ``check_single_leader`` fails if two connected servers lead *in the same
  term*; an old leader that has just been reconnected may still claim an
  older term for a few milliseconds, and the newest term's leader is returned.
* Where eliben checks linearizability or exactly-once implicitly (a value
  seen after concurrent or retried writes), the client history also goes
  through ``lincheck.check``, which must say "ok".

Not ported: ``TestCASBasic`` and ``TestCASConcurrent`` (parts 4 and 5), and
the ``datastore_test.go`` tests ``TestCASBasic``/``TestCASConcurrent``:
raftkit's KV has no compare-and-swap operation. ``TestGetPut`` of
``datastore_test.go`` is ported against ``KVStore``. The "found" flags eliben
checks on Put (``got key found for %d, want false``) are not observable here;
the linearizability check covers what they guard (no Put saw a value that
nobody wrote).

Found while porting ``CheckGetTimesOut`` (not an eliben test; it fails until
src/ is fixed): ``test_clerk_timeout_ends_the_operation``. ``Clerk.request``
checks its deadline only between passes over all servers, and one pass can
take n x ``KVService.request_timeout``; ``Clerk._do`` gives up after
``timeout + 1 s`` and raises ``ClerkTimeout`` while the request thread keeps
running, so the clerk's next operation overlaps the "timed-out" one.
"""

from __future__ import annotations

import random

import pytest

from raftkit import lincheck
from raftkit.kv import Clerk, ClerkTimeout, KVOp, KVService, KVStore
from raftkit.kvcluster import KVCluster
from tests.eliben import sleep_ms

SEEDS = [1, 2, 3]
pytestmark = pytest.mark.usefixtures("no_leaked_threads")


# ---------------------------------------------------------------- harness
class DelayNextResponseKV(KVService):
    """eliben's ``DelayNextHTTPResponse``: the service still acts on the next
    request as usual, but its answer comes 300 ms late. eliben's client gives
    up on a try after 50 ms, so it never sees that answer and retries; here
    the late answer is therefore lost (None), and the clerk retries."""

    delay_next = False

    def kv_request(self, args):
        reply = super().kv_request(args)
        if self.delay_next:
            self.delay_next = False
            self.clock.sleep(0.300, label="delayed response")
            return None
        return reply


class _Servers:
    """What a ``Clerk`` needs of its cluster, restricted to a list of server
    ids: eliben's ``kvclient.New(addrs)``. The clerk's k-th server is
    ``addrs[k]``; everything else is the real cluster."""

    def __init__(self, kv: KVCluster, addrs: list[int]):
        self.kv, self.addrs = kv, list(addrs)
        self.n, self.clock, self.bus = len(self.addrs), kv.clock, self

    def add_client(self, obj) -> int:
        return self.kv.bus.add_client(obj)

    def call(self, src, dst, method, args):
        return self.kv.bus.call(src, self.addrs[dst], method, args)

    def run_until(self, pred, timeout):
        return self.kv.run_until(lambda _: pred(self), timeout)


class Harness:
    """eliben's ``testharness.go`` on a ``KVCluster``; every assertion names the seed."""

    def __init__(self, kv: KVCluster):
        self.kv, self.seed = kv, kv.seed
        self.views: list[_Servers] = []  # the server lists clerks were made over
        self.connected = [True] * kv.n  # linked to its Raft peers (eliben: connected implies alive)
        self.alive = [True] * kv.n
        self.rng = random.Random(f"{kv.seed}/eliben-harness")

    # -- faults -----------------------------------------------------------
    def _links(self):
        if all(self.connected):
            self.kv.heal()
        else:
            linked = [i for i in range(self.kv.n) if self.connected[i]]
            self.kv.partition(linked, *[[i] for i in range(self.kv.n) if not self.connected[i]])

    def disconnect_service_from_peers(self, i: int) -> None:
        self.connected[i] = False
        self._links()

    def reconnect_service_to_peers(self, i: int) -> None:
        self.connected[i] = True
        self._links()

    def crash_service(self, i: int) -> None:
        self.disconnect_service_from_peers(i)
        self.alive[i] = False
        self.kv.crash(i)

    def restart_service(self, i: int) -> None:
        assert not self.alive[i], f"seed={self.seed}: id={i} is alive in restart_service"
        self.kv.restart(i)
        self.reconnect_service_to_peers(i)
        self.alive[i] = True
        sleep_ms(self.kv, 20)

    def delay_next_response_from_service(self, i: int) -> None:
        service = self.kv.services[i]
        assert isinstance(service, DelayNextResponseKV), "use KVCluster(..., service_class=DelayNextResponseKV)"
        service.delay_next = True

    # -- clients ----------------------------------------------------------
    def _clerk_over(self, addrs: list[int]) -> Clerk:
        kv = self.kv
        servers = _Servers(kv, addrs)
        self.views.append(servers)  # a clerk holds its cluster weakly (raftkit.kv.Clerk): this one lives on here
        clerk = Clerk(servers, len(kv.clerks), timeout=kv.clerk_timeout, history=kv.history)
        kv.clerks.append(clerk)
        return clerk

    def new_client(self) -> Clerk:
        return self.kv.clerk()

    def new_client_with_random_addrs_order(self) -> Clerk:
        addrs = [i for i in range(self.kv.n) if self.alive[i]]
        self.rng.shuffle(addrs)
        return self._clerk_over(addrs)

    def new_client_single_service(self, i: int) -> Clerk:
        return self._clerk_over([i])

    # -- checks -----------------------------------------------------------
    def check_single_leader(self) -> int:
        """Up to 8 looks 150 ms apart (first at once) for a leader among
        the connected servers; two leaders in one term fail at once."""
        for _ in range(8):
            leaders: dict[int, list[int]] = {}
            for i in range(self.kv.n):
                if self.connected[i] and self.alive[i]:
                    term, is_leader = self.kv.get_state(i)
                    if is_leader:
                        leaders.setdefault(term, []).append(i)
            for term, ids in leaders.items():
                assert len(ids) == 1, f"seed={self.seed}: both {ids} think they lead term {term}"
            if leaders:
                return leaders[max(leaders)][0]
            sleep_ms(self.kv, 150)
        pytest.fail(f"seed={self.seed}: leader not found (t={self.kv.now:.3f}s)")

    def _do(self, what, fn, *args):
        try:
            return fn(*args)
        except ClerkTimeout as e:
            pytest.fail(f"seed={self.seed}: {what}{args!r} timed out at t={self.kv.now:.3f}s: {e}")

    def check_put(self, c: Clerk, key: str, value: str) -> None:
        result = self._do("put", c.put, key, value)
        assert result is None, f"seed={self.seed}: put returned {result!r}, want None"

    def check_append(self, c: Clerk, key: str, value: str) -> str:
        return self._do("append", c.append, key, value)

    def check_get(self, c: Clerk, key: str, want: str) -> None:
        got = self._do("get", c.get, key)
        assert got == want, f"seed={self.seed}: client {c.client_id}: get({key!r}) = {got!r}, want {want!r}"

    def check_get_times_out(self, c: Clerk, key: str) -> None:
        """The Get cannot be committed: with a 300 ms deadline the clerk gives up."""
        saved, c.timeout = c.timeout, 0.300
        try:
            got = c.get(key)
        except ClerkTimeout as e:
            assert "may or may not have been applied" in str(e), f"seed={self.seed}: {e}"
        else:
            pytest.fail(f"seed={self.seed}: client {c.client_id}: get({key!r}) = {got!r}, want a timeout")
        finally:
            c.timeout = saved
        entry = self.kv.history[-1]
        assert (entry.client_id, entry.kind, entry.ret) == (c.client_id, "get", None), (
            f"seed={self.seed}: a timed-out get must stay unanswered in the history, got {entry}")

    def check_linearizable(self) -> None:
        ops = [lincheck.Operation(**vars(e)) for e in self.kv.history]
        result = lincheck.check(ops, timeout=10)
        assert result.status == "ok", f"seed={self.seed}: history of {len(ops)} ops is not linearizable: {result}"

    def committed_copies(self, i: int, client_id: int, value: str) -> int:
        """How many log entries node i applied for ``client_id``'s op carrying ``value``."""
        return sum(1 for m in self.kv.applied(i) if m.command_valid and isinstance(m.command, KVOp)
                   and m.command.client_id == client_id and m.command.value == value)

    def wait_for_data(self, i: int, want: dict, timeout: float = 1.0) -> None:
        """Node i's state machine reaches ``want`` (bounded wait)."""
        ok = self.kv.run_until(lambda kv: kv.data(i) == want, timeout)
        assert ok, f"seed={self.seed}: node {i} has {self.kv.data(i)}, want {want}"


def kv_items(n: int) -> dict:
    return {f"key{i}": f"value{i}" for i in range(n)}


# ================================================ datastore_test.go (part 5)
def test_datastore_get_put():
    """TestGetPut on the state machine alone: an absent key reads "", a Put
    replaces the value (read before/after, since our Put returns None), and
    other keys are untouched."""
    s = KVStore()
    seq = iter(range(1, 100))

    def op(kind, key, value=None):
        return s.apply(KVOp(1, next(seq), kind, key, value))

    assert op("get", "foo") == ""
    assert op("put", "foo", "bar") is None
    assert op("get", "foo") == "bar"
    assert op("put", "foo", "baz") is None
    assert op("get", "foo") == "baz"
    assert op("get", "nix") == ""
    assert op("put", "nix", "hard") is None
    assert s.data == {"foo": "baz", "nix": "hard"}


# ==================================================== system_test.go (4 + 5)
@pytest.mark.parametrize("seed", SEEDS)
def test_setup_harness(seed):
    """TestSetupHarness: a 3-server KV cluster starts and stops cleanly. 80 ms
    is shorter than any election timeout (150-300 ms), so nobody leads yet
    and no server has data."""
    with KVCluster(3, seed=seed) as kv:
        sleep_ms(kv, 80)
        kv.check_no_leader()
        assert all(kv.data(i) == {} for i in range(3)), f"seed={seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_client_request_before_consensus(seed):
    """TestClientRequestBeforeConsensus: a Put sent at 10 ms, before any
    election can have finished, makes the clerk cycle through the servers
    until a leader exists; it then completes (not before 150 ms, the shortest
    election timeout) and reaches every server."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        sleep_ms(kv, 10)
        c1 = h.new_client()
        h.check_put(c1, "llave", "cosa")
        put = kv.history[-1]
        assert put.ret is not None and put.ret >= 0.150, (
            f"seed={seed}: put answered at {put.ret} s, before any election")
        sleep_ms(kv, 80)
        for i in range(3):
            assert kv.data(i) == {"llave": "cosa"}, f"seed={seed}: node {i} has {kv.data(i)}"


@pytest.mark.parametrize("seed", SEEDS)
def test_basic_put_get_single_client(seed):
    """TestBasicPutGetSingleClient: one client's Get sees its own earlier Put."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        h.check_single_leader()
        c1 = h.new_client()
        h.check_put(c1, "llave", "cosa")
        h.check_get(c1, "llave", "cosa")
        sleep_ms(kv, 80)
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_put_prev_value(seed):
    """TestPutPrevValue (adapted: our Put returns None, so the previous value
    is read with a Get before each Put): the first Put of a key finds nothing,
    the second finds the first value, and another key is independent."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        h.check_single_leader()
        c1 = h.new_client()
        h.check_get(c1, "llave", "")            # prev="", found=false
        h.check_put(c1, "llave", "cosa")
        h.check_get(c1, "llave", "cosa")        # prev of the next Put: "cosa"
        h.check_put(c1, "llave", "frodo")
        h.check_get(c1, "llave", "frodo")
        h.check_get(c1, "mafteah", "")          # a different key: prev="", found=false
        h.check_put(c1, "mafteah", "davar")
        h.check_get(c1, "mafteah", "davar")
        h.check_get(c1, "llave", "frodo")
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_basic_append_same_client(seed):
    """TestBasicAppendSameClient: Append to an existing key extends it (our
    append returns the new value: the previous one, "bar", plus "baz"); Append
    to a missing key creates it from ""."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        h.check_single_leader()
        c1 = h.new_client()
        h.check_put(c1, "foo", "bar")
        got = h.check_append(c1, "foo", "baz")
        assert got == "bar" + "baz", f"seed={seed}: append returned {got!r}"
        h.check_get(c1, "foo", "barbaz")
        got = h.check_append(c1, "mix", "match")
        assert got == "" + "match", f"seed={seed}: append to a missing key returned {got!r}"
        h.check_get(c1, "mix", "match")
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_basic_put_get_different_clients(seed):
    """TestBasicPutGetDifferentClients: a Get by a second client, started
    after the first client's Put returned, sees that Put (linearizability)."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        h.check_single_leader()
        c1 = h.new_client()
        h.check_put(c1, "k", "v")
        c2 = h.new_client()
        h.check_get(c2, "k", "v")
        sleep_ms(kv, 80)
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_basic_append_different_clients(seed):
    """TestBasicAppendDifferentClients: a second client's Append extends the
    first client's Put, and the first client reads the result."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        h.check_single_leader()
        c1 = h.new_client()
        h.check_put(c1, "foo", "bar")
        c2 = h.new_client()
        got = h.check_append(c2, "foo", "baz")
        assert got == "barbaz", f"seed={seed}: append returned {got!r}, want the previous 'bar' + 'baz'"
        h.check_get(c1, "foo", "barbaz")
        got = h.check_append(c2, "mix", "match")
        assert got == "match", f"seed={seed}: append to a missing key returned {got!r}"
        h.check_get(c1, "mix", "match")
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_append_different_leaders(seed):
    """TestAppendDifferentLeaders: Appends committed under two different
    leaders both survive, in order: the new leader's log holds the first
    Append, and the restarted old leader catches up on the second."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        c1 = h.new_client()
        h.check_append(c1, "foo", "bar")
        h.check_get(c1, "foo", "bar")

        h.crash_service(lid)
        h.check_single_leader()

        c2 = h.new_client()
        h.check_append(c2, "foo", "baz")
        h.check_get(c2, "foo", "barbaz")

        h.restart_service(lid)
        c3 = h.new_client()
        sleep_ms(kv, 300)
        h.check_get(c3, "foo", "barbaz")
        h.wait_for_data(lid, {"foo": "barbaz"})
        h.check_linearizable()


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_clients_puts_and_gets(seed, n):
    """TestConcurrentClientsPutsAndGets (part 4: TestParallelClientsPutsAndGets)
    and, with n=5, Test5ServerConcurrentClientsPutsAndGets: nine clients Put
    nine keys at once; 150 ms later nine new clients Get them. eliben's Gets
    expect the values, so every Put must have finished within 150 ms, and
    every Get within the next 150 ms; the whole history must be linearizable."""
    with KVCluster(n, seed=seed) as kv:
        h = Harness(kv)
        h.check_single_leader()
        puts, gets = {}, {}

        def putter(i):
            def body(c):
                try:
                    c.put(f"key{i}", f"value{i}")
                    puts[i] = "done"
                except ClerkTimeout as e:
                    puts[i] = e
            return body

        def getter(i):
            def body(c):
                try:
                    gets[i] = c.get(f"key{i}")
                except ClerkTimeout as e:
                    gets[i] = e
            return body

        for i in range(9):
            kv.start_client(putter(i), h.new_client())
        sleep_ms(kv, 150)
        assert puts == {i: "done" for i in range(9)}, f"seed={seed} n={n}: puts after 150 ms: {puts}"

        for i in range(9):
            kv.start_client(getter(i), h.new_client())
        sleep_ms(kv, 150)
        assert gets == {i: f"value{i}" for i in range(9)}, f"seed={seed} n={n}: gets after 150 ms: {gets}"
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_disconnect_leader_after_puts(seed):
    """TestDisconnectLeaderAfterPuts: a leader cut off from its peers is
    replaced; a client that can only reach the old leader cannot get a Get
    committed (300 ms deadline), while clients that try the servers in any
    order read every earlier Put. Once reconnected, the old leader steps down."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        n = 4
        for i in range(n):
            c = h.new_client()
            h.check_put(c, f"key{i}", f"value{i}")

        h.disconnect_service_from_peers(lid)
        sleep_ms(kv, 300)
        newlid = h.check_single_leader()
        assert newlid != lid, f"seed={seed}: got the same leader {lid}"

        c = h.new_client_single_service(lid)
        h.check_get_times_out(c, "key1")

        for _ in range(5):
            c = h.new_client_with_random_addrs_order()
            for j in range(n):
                h.check_get(c, f"key{j}", f"value{j}")

        h.reconnect_service_to_peers(lid)
        sleep_ms(kv, 200)
        assert not kv.get_state(lid)[1], f"seed={seed}: old leader {lid} still leads 200 ms after reconnecting"
        assert kv.data(lid) == kv_items(n), f"seed={seed}: old leader {lid} has {kv.data(lid)}"
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_disconnect_leader_and_follower(seed):
    """TestDisconnectLeaderAndFollower: with two of three servers cut off
    there is no majority and a Get times out; reconnecting one follower
    restores a majority that still holds every earlier Put, and so does
    reconnecting the old leader."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        n = 4
        for i in range(n):
            c = h.new_client()
            h.check_put(c, f"key{i}", f"value{i}")

        h.disconnect_service_from_peers(lid)
        other = (lid + 1) % 3
        h.disconnect_service_from_peers(other)
        sleep_ms(kv, 100)

        c = h.new_client()
        h.check_get_times_out(c, "key0")

        h.reconnect_service_to_peers(other)
        h.check_single_leader()
        for i in range(n):
            h.check_get(c, f"key{i}", f"value{i}")

        h.reconnect_service_to_peers(lid)
        h.check_single_leader()
        for i in range(n):
            h.check_get(c, f"key{i}", f"value{i}")
        sleep_ms(kv, 100)
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_follower(seed):
    """TestCrashFollower: with one follower crashed, the leader and the
    remaining follower are a majority: a client that talks only to the leader
    and clients that try every server both read every Put."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        n = 3
        for i in range(n):
            c = h.new_client()
            h.check_put(c, f"key{i}", f"value{i}")

        other = (lid + 1) % 3
        h.crash_service(other)

        for i in range(n):
            c = h.new_client_single_service(lid)
            h.check_get(c, f"key{i}", f"value{i}")

        for i in range(n):
            c = h.new_client()
            h.check_get(c, f"key{i}", f"value{i}")
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_leader(seed):
    """TestCrashLeader: every Put the crashed leader acknowledged was
    committed on a majority, so the new leader serves it."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        n = 3
        for i in range(n):
            c = h.new_client()
            h.check_put(c, f"key{i}", f"value{i}")

        h.crash_service(lid)
        h.check_single_leader()

        for i in range(n):
            c = h.new_client()
            h.check_get(c, f"key{i}", f"value{i}")
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_then_restart_leader(seed):
    """TestCrashThenRestartLeader: as TestCrashLeader, then the old leader
    restarts from its persisted log, rejoins, and "gets all the data":
    clients asking the servers in any order read every Put, and the restarted
    node's own state machine holds them."""
    with KVCluster(3, seed=seed) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        n = 3
        for i in range(n):
            c = h.new_client()
            h.check_put(c, f"key{i}", f"value{i}")

        h.crash_service(lid)
        h.check_single_leader()

        for i in range(n):
            c = h.new_client()
            h.check_get(c, f"key{i}", f"value{i}")

        h.restart_service(lid)

        for _ in range(5):
            c = h.new_client_with_random_addrs_order()
            for j in range(n):
                h.check_get(c, f"key{j}", f"value{j}")
        h.wait_for_data(lid, kv_items(n))
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_append_linearizable_after_delay(seed):
    """TestAppendLinearizableAfterDelay: the leader applies an Append but its
    answer never reaches the client, which retries the same request. The
    retry must not append again (exactly once): eliben answers it with
    "duplicate", ours with the original result, "barbazmira"."""
    with KVCluster(3, seed=seed, service_class=DelayNextResponseKV) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        c1 = h.new_client()
        h.check_put(c1, "foo", "bar")
        h.check_append(c1, "foo", "baz")
        h.check_get(c1, "foo", "barbaz")

        h.delay_next_response_from_service(lid)
        got = h.check_append(c1, "foo", "mira")
        assert got == "barbazmira", f"seed={seed}: the retried append returned {got!r}"
        assert not kv.services[lid].delay_next, f"seed={seed}: the leader never answered the append"
        copies = h.committed_copies(lid, c1.client_id, "mira")
        assert copies >= 2, f"seed={seed}: the retry should have put the append in the log again, found {copies}"

        sleep_ms(kv, 300)
        h.check_get(c1, "foo", "barbazmira")
        h.check_linearizable()


@pytest.mark.parametrize("seed", SEEDS)
def test_append_linearizable_after_crash(seed):
    """TestAppendLinearizableAfterCrash: the leader commits an Append, its
    answer is delayed, and it crashes 50 ms later. The new leader has the
    Append exactly once ("barmira"), whether the client (500 ms deadline)
    gets the original result through a retry or times out."""
    with KVCluster(3, seed=seed, service_class=DelayNextResponseKV) as kv:
        h = Harness(kv)
        lid = h.check_single_leader()
        c1 = h.new_client()
        h.check_append(c1, "foo", "bar")
        h.check_get(c1, "foo", "bar")

        h.delay_next_response_from_service(lid)
        outcome = []

        def body(c):
            c.timeout = 0.500
            try:
                outcome.append(c.append("foo", "mira"))
            except ClerkTimeout as e:
                outcome.append(e)

        kv.start_client(body, c1)
        sleep_ms(kv, 50)
        assert not outcome, f"seed={seed}: the append was answered before the crash: {outcome}"
        h.crash_service(lid)
        newlid = h.check_single_leader()
        c2 = h.new_client()
        h.check_get(c2, "foo", "barmira")

        assert kv.run_until(lambda _: outcome, 5.0), f"seed={seed}: the append never returned"
        assert outcome[0] == "barmira" or isinstance(outcome[0], ClerkTimeout), (
            f"seed={seed}: the append returned {outcome[0]!r}")
        h.check_get(c2, "foo", "barmira")
        copies = h.committed_copies(newlid, c1.client_id, "mira")
        assert copies >= 1, f"seed={seed}: the append is not in the new leader's log"
        h.check_linearizable()


# ===================================== found while porting (not an eliben test)
def _three_stale_leaders(kv: KVCluster, seed: int) -> None:
    """5 servers: isolate the leader, let the rest elect another, isolate it
    too, once more; the last two cannot elect anyone. Three isolated servers
    then each still believe they lead (in three different terms)."""
    kv.put("x", "")
    rest = list(range(kv.n))
    isolated = []
    for _ in range(3):
        assert kv.run_until(lambda k: any(k.get_state(i)[1] for i in rest), 5.0), f"seed={seed}: no leader in {rest}"
        leader = max((i for i in rest if kv.get_state(i)[1]), key=lambda i: kv.get_state(i)[0])
        isolated.append(leader)
        rest = [i for i in rest if i != leader]
        kv.partition(rest, *[[i] for i in isolated])
    assert all(kv.get_state(i)[1] for i in isolated), f"seed={seed}: {isolated} should all still lead"


@pytest.mark.parametrize("seed", SEEDS)
def test_clerk_timeout_ends_the_operation(seed):
    """CheckGetTimesOut's premise: once an operation has timed out, it is
    over. ``ClerkTimeout`` promises "a later operation of the same clerk is
    still safe", and the KV store's dedup table relies on it (one outstanding
    operation per client: a lower sequence number is taken as an old retry and
    answered OK without being applied). Here three isolated servers each
    still lead, so one pass of the clerk over the 5 servers takes ~1.5 s (each
    of them answers ErrTimeout after ``request_timeout`` = 0.5 s). The clerk
    must still stop when it reports the timeout: no thread of that operation
    may go on sending it, and it may not return after the next operation of
    the same clerk started."""
    with KVCluster(5, seed=seed, clerk_timeout=1.6) as kv:
        _three_stale_leaders(kv, seed)
        clerk = kv.clerk()
        with pytest.raises(ClerkTimeout):
            clerk.append("x", "a")
        still = [t.name for t in kv.clock.live_tasks() if t.owner is clerk]
        assert not still, (f"seed={seed}: the clerk reported ClerkTimeout at t={kv.now:.3f}s, but its request "
                           f"is still running in {still} (Clerk.request checks its deadline only between passes "
                           "over all servers; Clerk._do gives up after timeout + 1 s)")
        kv.heal()
        clerk.append("x", "b")
        kv.run_for(3.0)
        first, second = [e for e in kv.history if e.client_id == clerk.client_id]
        assert first.ret is None or first.ret <= second.call, (
            f"seed={seed}: the timed-out append returned at {first.ret:.3f}s, after the same clerk's next "
            f"operation started at {second.call:.3f}s")
