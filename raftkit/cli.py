"""The ``raftkit`` command line.

    raftkit chaos --nodes 5 --seeds 100 --duration 30
    raftkit chaos --nodes 5 --duration 30 --seed 17      # replay one seed
    raftkit grade submissions/*.ipynb --json out.json --csv class.csv -j 2
    raftkit release solutions/ exercises/
    raftkit mutants --exercise 2 --json mutants.json     # how many wrong solutions the battery catches
"""

from __future__ import annotations

import argparse
import sys

from . import chaos


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raftkit",
                                description="raftkit: learn Raft on a real, deterministic implementation.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("grade", add_help=False, help="grade exercise notebooks (see `raftkit grade --help`)")
    sub.add_parser("release", add_help=False, help="write student versions of solution notebooks")
    sub.add_parser("mutants", add_help=False,
                   help="mutation testing of the grading battery (see `raftkit mutants --help`)")
    c = sub.add_parser("chaos", help="random faults with KV clients; safety monitor and linearizability check")
    c.add_argument("--nodes", type=_positive_int, default=5, help="nodes per cluster (1-15, default 5)")
    c.add_argument("--seeds", type=_positive_int, default=100, help="how many seeds to run (default 100)")
    c.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    c.add_argument("--seed", type=int, default=None, help="run (replay) this one seed only")
    c.add_argument("--duration", type=_positive_float, default=30.0,
                   help="cluster seconds of faults per seed (default 30)")
    c.add_argument("--clients", type=_positive_int, default=3, help="concurrent KV clients (default 3)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["grade"]:  # the grading commands have their own parsers
        from .grading.cli import grade_main
        return grade_main(argv[1:])
    if argv[:1] == ["release"]:
        from .grading.cli import release_main
        return release_main(argv[1:])
    if argv[:1] == ["mutants"]:
        from .grading.mutants import main as mutants_main
        return mutants_main(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "chaos":
        if not 1 <= args.nodes <= 15:
            print(f"raftkit chaos: --nodes must be between 1 and 15, got {args.nodes}", file=sys.stderr)
            return 2
        first, count = (args.seed, 1) if args.seed is not None else (args.first_seed, args.seeds)
        results = chaos.run_chaos(nodes=args.nodes, seeds=count, duration=args.duration, first_seed=first,
                                  clients=args.clients, progress=not args.no_progress)
        return 0 if all(r.ok for r in results) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
