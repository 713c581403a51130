"""Run every benchmark and print the figures (`make bench`)."""

import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chaos_speed
import class_speed
import click_latency
import clock_costs
import cpu_by_process
import grade_speed
import isolation_cpu
import isolation_speed
import lincheck_hard
import lincheck_speed
import marginal_costs
import node_process_cost
import play_cost
import predicted_ticks
import real_latency
import render_speed
import round_trips
import run_overhead
import suite_time
import virtual_speed
import wire_roundtrip

if __name__ == "__main__":
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    virtual_speed.main()
    clock_costs.main()
    real_latency.main()
    if importlib.util.find_spec("pysyncobj"):  # the optional `bench` extra
        import real_vs_pysyncobj
        real_vs_pysyncobj.main()
    else:
        print("real_vs_pysyncobj: skipped (pip install -e '.[bench]' installs PySyncObj)")
    suite_time.main()
    lincheck_speed.main()
    lincheck_hard.main()
    chaos_speed.main()
    grade_speed.main(2, isolation="none")
    grade_speed.main(2)
    isolation_speed.main()
    isolation_cpu.main()
    predicted_ticks.main([6])  # the heaviest battery; all six: python benchmarks/predicted_ticks.py
    round_trips.main([6])  # likewise
    cpu_by_process.main([6])  # likewise
    node_process_cost.main()
    run_overhead.main()
    marginal_costs.main()
    wire_roundtrip.main()
    class_speed.main()
    render_speed.main()
    click_latency.main()
    play_cost.main()
