"""Drawings of clusters, histories and traces (matplotlib, no pyplot), and the live widget."""

from .draw import draw_cluster, draw_logs, figure, render_png
from .history import draw_failure, draw_history
from .timeline import collect_frames, export_animation, timeline

__all__ = ["draw_cluster", "draw_logs", "figure", "render_png", "draw_history", "draw_failure", "timeline",
           "collect_frames", "export_animation"]
