"""Determinism: the same seed and the same calls give the same run, anywhere."""

import textwrap

import pytest

import raftkit

SCENARIO = textwrap.dedent("""
    import raftkit

    def scenario(seed):
        with raftkit.Cluster(5, seed=seed) as c:
            leader = c.check_one_leader()
            c.one("alpha", 5)
            c.set_reliable(False)
            c.set_network(duplicate=0.1)
            for k in range(20):
                c.submit({"op": "put", "key": f"k{k % 3}", "value": k})
                c.run_for(0.05)
            c.crash(leader)
            c.partition([0, 1], [2, 3, 4])
            c.run_for(1.0)
            c.heal()
            c.restart(leader)
            c.set_reliable(True)
            c.one("omega", 5, retry=True)
            return c.trace_digest(), len(c.trace), repr(c)
""")
namespace = {}
exec(SCENARIO, namespace)
scenario = namespace["scenario"]


def test_same_seed_same_run():
    """Two runs with the same seed and calls have identical traces and state."""
    assert scenario(11) == scenario(11)


def test_different_seed_different_run():
    """A different seed gives a different run."""
    assert scenario(11)[0] != scenario(12)[0]


@pytest.mark.parametrize("hashseed", ["0", "1", "4242"])
def test_same_digest_across_processes_and_hash_seeds(hashseed, run_python):
    """Nothing depends on string hashing, object addresses or thread timing:
    a fresh process with another PYTHONHASHSEED gets the same digest."""
    here = scenario(11)
    code = SCENARIO + "\nd, n, r = scenario(11)\nprint(d)\nprint(n)\n"
    out = run_python(code, env={"PYTHONHASHSEED": hashseed})
    digest, length = out.split()
    assert (digest, int(length)) == here[:2]


def test_step_by_step_equals_run_for():
    """Stepping event by event gives the same trace as running for the same time."""
    with raftkit.Cluster(3, seed=4) as a, raftkit.Cluster(3, seed=4) as b:
        a.run_for(1.0)
        while b.clock.next_time() is not None and b.clock.next_time() <= 1.0:
            b.step()
        b.run_for(1.0 - b.now)
        assert a.trace_digest() == b.trace_digest()
        assert [str(e) for e in a.trace] == [str(e) for e in b.trace]
