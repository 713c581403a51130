"""Chaos runs: random faults with KV clients, the safety monitor on, the
history checked for linearizability; every seed replays exactly."""

import io

import pytest

from raftkit import chaos, cli
from tests.broken import LocalReadKV, NoDedupKV


@pytest.mark.slow
def test_chaos_smoke_30_seeds_all_clean():
    """30 seeds of 6 s of faults on 5 nodes: no safety violation, every history linearizable."""
    out = io.StringIO()
    results = chaos.run_chaos(nodes=5, seeds=30, duration=6.0, progress=False, out=out)
    assert len(results) == 30
    bad = [f"seed {r.seed}: {r.problem}" for r in results if not r.ok]
    assert bad == [], "\n".join(bad)
    assert all(r.operations > 0 and sum(r.faults.values()) > 5 for r in results)
    assert sum(r.faults["crash"] for r in results) > 0 and sum(r.faults["partition"] for r in results) > 0
    text = out.getvalue()
    assert "30 seeds" in text and "0 safety violations" in text and "0 histories not linearizable" in text


def test_a_seed_replays_exactly():
    """Same seed, same run; replay(seed, until) is that run stopped at a moment, still live."""
    a = chaos.run_seed(7, nodes=3, duration=5.0)
    b = chaos.run_seed(7, nodes=3, duration=5.0)
    assert (a.digest, a.operations, a.faults) == (b.digest, b.operations, b.faults)
    assert chaos.run_seed(8, nodes=3, duration=5.0).digest != a.digest
    with chaos.replay(7, 3.0, nodes=3, duration=5.0) as kv:
        assert kv.now == 3.0
        full = chaos.replay(7, 100.0, nodes=3, duration=5.0)
        full.stop()
        assert [e.canonical() for e in kv.trace] == [e.canonical() for e in full.trace if e.time <= 3.0]
        assert kv.step() is not None


@pytest.mark.parametrize("service_class", [NoDedupKV, LocalReadKV])
def test_chaos_catches_a_broken_service(service_class):
    """Retries without deduplication double some appends; local reads on a
    deposed leader are stale. The checker flags the history and the summary
    gives the replay command."""
    results = []
    for seed in range(10):  # stop at the first seed that shows the bug
        results.append(chaos.run_seed(seed, nodes=5, duration=10.0, service_class=service_class))
        if results[-1].linearizable == "illegal":
            break
    flagged = [r for r in results if r.linearizable == "illegal"]
    assert flagged, [r.linearizable for r in results]
    text = chaos.summary(results)
    assert f"FAILED seed {flagged[0].seed}: history illegal" in text
    assert f"replay: raftkit chaos --nodes 5 --duration 10 --clients 3 --seed {flagged[0].seed}" in text


def test_cli(capsys):
    assert cli.main(["chaos", "--nodes", "3", "--seeds", "2", "--duration", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 seeds" in out and " seed   ops" in out
    assert cli.main(["chaos", "--nodes", "20", "--seeds", "1", "--no-progress"]) == 2
    assert "--nodes must be between 1 and 15" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["chaos", "--duration", "-1"])
    assert "expected a number > 0" in capsys.readouterr().err
