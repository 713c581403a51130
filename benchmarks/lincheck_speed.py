"""How long the linearizability checker takes on a realistic concurrent KV history.

1,000 operations from 5 clients over 10 keys (seeded): each client issues
get/put/append operations back to back with random durations, so they overlap
other clients' operations; outputs come from a sequential store replayed at a
random instant inside each operation, so the history is linearizable. Prints
the median wall time of ``check()`` over 3 runs; the target is < 1 s.

Partitioning by key makes that case easy (about 100 ops per key, rarely more
than one in flight), so a second line shows a harder, single-key history:
1,000 ops from 10 clients all on one key, i.e. ~10 operations in flight.
"""

import statistics
import time

from raftkit.lincheck import check, random_history

N_OPS, N_CLIENTS, N_KEYS, SEED, RUNS = 1000, 5, 10, 42, 3


def time_check(n_clients: int, n_keys: int) -> float:
    """Median wall time of check() on a seeded linearizable history."""
    history = random_history(N_OPS, n_clients, n_keys, seed=SEED)
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        result = check(history)
        times.append(time.perf_counter() - t0)
        assert result.status == "ok", result
    return statistics.median(times)


def main() -> float:
    median = time_check(N_CLIENTS, N_KEYS)
    print(f"lincheck: {N_OPS} ops, {N_CLIENTS} clients, {N_KEYS} keys: {median:.2f} s (target < 1 s)"
          f"  [{median * 1e3:.1f} ms]")
    hard = time_check(10, 1)
    print(f"lincheck (hard): {N_OPS} ops, 10 clients, 1 key: {hard:.2f} s")
    return median


if __name__ == "__main__":
    main()
