"""The ``raftkit`` command line.

    raftkit chaos --nodes 5 --seeds 100 --duration 30
    raftkit chaos --nodes 5 --duration 30 --seed 17      # replay one seed
    raftkit grade submissions/*.ipynb --json out.json --csv class.csv -j 2
    raftkit release solutions/ exercises/
    raftkit lincheck history.edn --model register --html report.html
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
    sub.add_parser("gradescope-autograder", add_help=False, help="build Gradescope's autograder zip")
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
    lc = sub.add_parser("lincheck", help="is a history (Jepsen EDN or JSON lines) linearizable?")
    lc.add_argument("file", help="history file: .edn (Jepsen) or JSON lines (raftkit.histfile)")
    lc.add_argument("--format", choices=["edn", "jsonl"], help="file format (default: by suffix)")
    lc.add_argument("--model", choices=["auto", "kv", "register"], default="auto",
                    help="sequential model: kv (get/put/append), register (read/write/cas); "
                         "default: from the operation kinds")
    lc.add_argument("--independent", action="store_true",
                    help="EDN values are [key value] pairs (jepsen.independent)")
    lc.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds of search (default 60)")
    lc.add_argument("--max-memo-mb", type=_positive_float, default=256.0,
                    help="cap on the search memo, MiB (default 256)")
    lc.add_argument("--html", metavar="OUT", help="also write a timeline of the history as a standalone HTML file")
    lc.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _pick_model(name: str, history):
    from .seqmodel import KV_MODEL, REGISTER_MODEL

    models = {"kv": KV_MODEL, "register": REGISTER_MODEL}
    if name != "auto":
        return models[name]
    kinds = {op.kind for op in history}
    for model in models.values():
        if kinds <= set(model.kinds):
            return model
    raise ValueError(f"operation kinds {', '.join(sorted(kinds))} fit neither the kv model "
                     f"(get, put, append) nor the register model (read, write, cas)")


def lincheck_main(args) -> int:
    """``raftkit lincheck FILE``: exit 0 linearizable, 1 not, 3 undecided, 2 bad input."""
    from tqdm import tqdm

    from . import histfile, lincheck

    try:
        history = histfile.read_history(args.file, args.format, independent=args.independent)
        model = _pick_model(args.model, history)
        with tqdm(total=len(model.partition(history)), unit="key", desc="lincheck",
                  disable=args.no_progress, file=sys.stderr) as bar:
            result = lincheck.check(history, args.timeout, model=model,
                                    max_memo_bytes=args.max_memo_mb * 2**20,
                                    progress=lambda key, status: bar.update())
    except (OSError, ValueError, TypeError) as e:
        print(f"raftkit lincheck: {args.file}: {e}", file=sys.stderr)
        return 2
    print(f"{args.file}: {len(history)} operations, {type(model).__name__}")
    print(result)
    if args.html:
        from .viz.history_html import write_html
        write_html(history, result, args.html, model=model)
        print(f"timeline written to {args.html}")
    return {"ok": 0, "illegal": 1}.get(result.status, 3)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["grade"]:  # the grading commands have their own parsers
        from .grading.cli import grade_main
        return grade_main(argv[1:])
    if argv[:1] == ["gradescope-autograder"]:
        from .grading.cli import autograder_main
        return autograder_main(argv[1:])
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
    if args.command == "lincheck":
        return lincheck_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
