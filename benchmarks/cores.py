"""Where a benchmark's clusters run. A grading worker is given a core of
its own (``RAFTKIT_CPU``, read as a clock is made), and its node processes
share it; a cluster made elsewhere keeps a second core, where the machine
has one, for a predicting cluster's node processes to run ahead on
(``raftkit.clock._spare_cpu``). Benchmarks that measure runs as the grader
makes them run them on one core."""

import contextlib
import functools
import os


@contextlib.contextmanager
def cores(one: bool):
    """Clusters made in it run on one core (``one``), or with a core to
    spare for their node processes."""
    before = os.environ.pop("RAFTKIT_CPU", None)
    if one:
        os.environ["RAFTKIT_CPU"] = "0"
    try:
        yield
    finally:
        os.environ.pop("RAFTKIT_CPU", None)
        if before is not None:
            os.environ["RAFTKIT_CPU"] = before


def on_one_core(fn):
    """``fn``, its clusters on one core, as a grading worker runs them."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with cores(one=True):
            return fn(*args, **kwargs)
    return run
