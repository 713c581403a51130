"""raftkit's test suite; shared fixtures live in conftest.py, shared helpers beside it."""
