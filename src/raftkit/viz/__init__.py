"""Plots for raftkit (matplotlib object API only: thread-safe, headless)."""
