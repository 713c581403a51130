"""Timing of a cluster, in seconds. Defaults are the Go original's."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Config"]


def _range(name, value):
    if (not isinstance(value, tuple) or len(value) != 2
            or not all(isinstance(v, (int, float)) and v >= 0 for v in value) or value[0] > value[1]):
        raise ValueError(f"Config.{name} must be a (low, high) tuple of seconds with 0 <= low <= high, got {value!r}")


@dataclass(frozen=True)
class Config:
    """``election_timeout``: (low, high) range each timeout is drawn from;
    ``heartbeat_interval``: leader's AppendEntries period;
    ``ticker_interval``: how often the election timer checks the time;
    ``rpc_delay``: (low, high) one-way network delay of each message."""

    election_timeout: tuple = (0.150, 0.300)
    heartbeat_interval: float = 0.050
    ticker_interval: float = 0.010
    rpc_delay: tuple = (0.001, 0.005)

    def __post_init__(self):
        _range("election_timeout", self.election_timeout)
        _range("rpc_delay", self.rpc_delay)
        if self.election_timeout[0] <= 0:
            raise ValueError(f"Config.election_timeout must be > 0, got {self.election_timeout!r}")
        for name in ("heartbeat_interval", "ticker_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"Config.{name} must be a number of seconds > 0, got {value!r}")
