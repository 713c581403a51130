"""Notebooks are stored executed, in order, without widget-state noise
(their outputs are then checked strictly by nbval: `pytest --nbval`)."""

import glob
import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ should hold the course"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_saved_executed_in_order(path):
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{os.path.basename(path)} was saved unexecuted or out of order (execution counts {counts}); "
        "re-run it top to bottom with `jupyter nbconvert --to notebook --execute --inplace`")
    assert "widgets" not in nb.metadata, "strip widget state before saving"
    timed = [i for i, c in enumerate(nb.cells) if "execution" in c.metadata]
    assert not timed, f"cells {timed} carry execution timing metadata (noise in diffs): strip it"
