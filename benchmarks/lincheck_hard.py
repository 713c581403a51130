"""The linearizability checker on many-client histories: time and peak memory.

2,000 operations from 50 clients over 10 keys (``lincheck.hard_history``, 2% of
replies lost so timed-out writes stay in flight), with one key made
non-linearizable by a stale read: target "illegal" in under 1 s and under
500 MB. The same generator with every key linearizable: target "ok" in under 1 s.

Each case runs in a fresh Python process, so that its peak resident memory
(``ru_maxrss``, interpreter included) is its own. With ``--porcupine DIR``
(Porcupine's ``test_data/kv`` folder, https://github.com/anishathalye/porcupine)
the same is measured on its c50-bad and c50-ok logs (read with
``raftkit.histfile.read_edn``; reading time not counted). A last case fills the
memo on purpose (no time limit): the default cap must end it, and the peak
memory shows what that cap costs.

    .venv/bin/python benchmarks/lincheck_hard.py [--porcupine DIR]
"""

import argparse
import json
import subprocess
import sys

from raftkit.lincheck import MAX_MEMO_BYTES

SEEDS = range(3)

CASE = """
import json, resource, sys, time
from raftkit import lincheck
from raftkit.histfile import read_history
kind, arg = sys.argv[1], sys.argv[2]
if kind == "cap":   # n concurrent timed-out appends, then a read no order explains
    n = int(arg)
    history = [lincheck.Operation(i, "append", "x", chr(65 + i), None, 0, None) for i in range(n)]
    history.append(lincheck.Operation(n, "get", "x", None, "impossible", 1, 2))
elif kind == "file":
    history = read_history(arg, "edn")
else:
    history = lincheck.hard_history(bad_keys=int(kind), seed=int(arg))
t0 = time.perf_counter()
result = lincheck.check(history, timeout=None if kind == "cap" else 60)
elapsed = time.perf_counter() - t0
print(json.dumps({"status": result.status, "seconds": elapsed, "ops": len(history),
                  "reasons": sorted(set(result.reasons.values())),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_case(kind: str, arg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CASE, kind, arg], capture_output=True, text=True,
                         check=True, timeout=300)
    return json.loads(out.stdout)


def report(name: str, runs: list[dict], want: str) -> None:
    statuses = sorted({r["status"] for r in runs})
    worst = max(r["seconds"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)
    print(f"lincheck {name}: {runs[0]['ops']} ops, {'/'.join(statuses)} (want {want}), "
          f"worst {worst:.3f} s (target < 1 s), peak {peak:.0f} MB (target < 500 MB)"
          f" over {len(runs)} run(s)")


def main(porcupine: str | None = None) -> None:
    report("2000 ops, 50 clients, 10 keys, 1 bad key", [run_case("1", str(s)) for s in SEEDS], "illegal")
    report("2000 ops, 50 clients, 10 keys, all ok", [run_case("0", str(s)) for s in SEEDS], "ok")
    cap = run_case("cap", "24")
    print(f"lincheck memo cap: 24 concurrent timed-out appends and an impossible read, no time limit: "
          f"{cap['status']} ({'; '.join(cap['reasons'])}) after {cap['seconds']:.1f} s, "
          f"peak {cap['peak_mb']:.0f} MB (default cap {MAX_MEMO_BYTES // 2**20} MiB of estimated memo)")
    if porcupine:
        for name, want in [("c50-bad", "illegal"), ("c50-ok", "ok")]:
            report(f"Porcupine {name}", [run_case("file", f"{porcupine}/{name}.txt")], want)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--porcupine", help="Porcupine's test_data/kv folder (optional)")
    main(p.parse_args().porcupine)
