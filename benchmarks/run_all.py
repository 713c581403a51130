"""Run every benchmark and print the figures (`make bench`)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chaos_speed  # noqa: E402
import clock_costs  # noqa: E402
import click_latency  # noqa: E402
import grade_speed  # noqa: E402
import lincheck_speed  # noqa: E402
import real_latency  # noqa: E402
import render_speed  # noqa: E402
import suite_time  # noqa: E402
import virtual_speed  # noqa: E402

if __name__ == "__main__":
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    virtual_speed.main()
    clock_costs.main()
    real_latency.main()
    suite_time.main()
    lincheck_speed.main()
    chaos_speed.main()
    grade_speed.main()
    render_speed.main()
    click_latency.main()
