"""Re-execute notebooks in place and store them the way the tests expect:
executed top to bottom, no widget state, no timing metadata. Run it after a
change that alters what a notebook prints (`make notebooks` runs it on all):

    .venv/bin/python -m tests.refresh_notebooks notebooks/03-replication.ipynb
"""

from __future__ import annotations

import os
import sys

import nbformat
from nbclient import NotebookClient


def refresh(path: str, timeout: int = 600) -> None:
    nb = nbformat.read(path, as_version=4)
    language = nb.metadata.get("language_info")  # kept: the kernel would add its Python version
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    nb.metadata.pop("widgets", None)
    if language is not None:
        nb.metadata["language_info"] = language
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"executing {path}", flush=True)
        refresh(path)
