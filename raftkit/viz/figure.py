"""A matplotlib Figure that shows itself in Jupyter as a PNG without pyplot
(pyplot's global state is not thread-safe, and raftkit never imports it)."""

from __future__ import annotations

import io

from matplotlib import figure

__all__ = ["Figure"]


class Figure(figure.Figure):
    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()
