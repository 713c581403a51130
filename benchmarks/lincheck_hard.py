"""The linearizability checker on many-client histories: time and peak memory.

2,000 operations from 50 clients over 10 keys (``lincheck.hard_history``, 2% of
replies lost so timed-out writes stay in flight), with one key made
non-linearizable by a stale read: target "illegal" in under 1 s and under
500 MB. The same generator with every key linearizable: target "ok" in under 1 s.

Each case runs in a fresh Python process, so that its peak resident memory
(``ru_maxrss``, interpreter included) is its own. With ``--porcupine DIR``
(Porcupine's ``test_data/kv`` folder, https://github.com/anishathalye/porcupine)
the same is measured on its c50-bad and c50-ok logs (read with
``raftkit.histfile.read_edn``; reading time not counted).

    .venv/bin/python benchmarks/lincheck_hard.py [--porcupine DIR]
"""

import argparse
import json
import subprocess
import sys

SEEDS = range(3)

CASE = """
import json, resource, sys, time
from raftkit import lincheck
from raftkit.histfile import read_history
kind, arg = sys.argv[1], sys.argv[2]
history = (read_history(arg, "edn") if kind == "file" else
           lincheck.hard_history(bad_keys=int(kind), seed=int(arg)))
t0 = time.perf_counter()
result = lincheck.check(history, timeout=60)
elapsed = time.perf_counter() - t0
print(json.dumps({"status": result.status, "seconds": elapsed, "ops": len(history),
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
    if porcupine:
        for name, want in [("c50-bad", "illegal"), ("c50-ok", "ok")]:
            report(f"Porcupine {name}", [run_case("file", f"{porcupine}/{name}.txt")], want)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--porcupine", help="Porcupine's test_data/kv folder (optional)")
    main(p.parse_args().porcupine)
