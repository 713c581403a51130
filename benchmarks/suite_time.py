"""Wall time of the whole scenario suite (MIT 3A-3C and eliben parts 1-3),
against the ~6.5 minutes the Go MIT suite needs for 3A-3D (target < 60 s),
and of the notebook suite under strict nbval (target < 5 minutes)."""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = ["tests/test_mit_scenarios.py", "tests/test_eliben_scenarios.py"]


def timed(*args):
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                         cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-500:]
    return wall, summary


def main():
    wall, summary = timed(*SUITE)
    print(f"scenario suite ({', '.join(os.path.basename(s) for s in SUITE)}): {wall:.1f} s wall -- {summary}")
    nb_wall, nb_summary = timed("--nbval", "notebooks")
    print(f"notebook suite (pytest --nbval notebooks): {nb_wall:.1f} s wall -- {nb_summary}")
    return wall, nb_wall


if __name__ == "__main__":
    main()
