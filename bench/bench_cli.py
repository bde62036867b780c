"""How long each command takes to answer ``--help``: it should not wait for a backend.

``python bench/bench_cli.py [--runs 5]`` runs ``python -m <command> --help`` of every command
``--runs`` times, each in a fresh process, and prints the median and range of the wall times
beside two baselines measured the same way: the bare interpreter (``python -c pass``, the
floor) and ``python -c "import keras"`` (what a command pays that loads the backend before
parsing). Results print as a table and go to ``bench/results/bench_cli.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from common import REPO, CpuWindow, describe_machine, format_table, machine_info, write_results

from pcam.cli import COMMANDS
from pcam.errors import run_cli

BASELINES = {
    "python -c pass (the floor)": ["-c", "pass"],
    'python -c "import keras" (the backend)': ["-c", "import keras"],
}


def time_runs(argv: list[str], runs: int) -> dict[str, Any]:
    """Wall seconds of ``runs`` fresh ``python argv`` processes, and how busy the rest was."""
    seconds = []
    window = CpuWindow()
    for _ in range(runs):
        with window:
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, *argv], cwd=REPO, capture_output=True, text=True, check=False
            )
            seconds.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"python {' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return {
        "argv": argv,
        "seconds": seconds,
        "median": statistics.median(seconds),
        "other_cores": window.other_cores,
    }


def run(*, runs: int) -> dict[str, Any]:
    """Time every command's --help and both baselines; print and record them."""
    machine = machine_info()
    measured = {f"python -m {module} --help": ["-m", module, "--help"] for module in COMMANDS}
    results = {}
    for name, argv in {**BASELINES, **measured}.items():
        print(f"timing: {name}", file=sys.stderr)
        results[name] = time_runs(argv, runs)
    machine["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    rows = [
        (
            name,
            f"{result['median']:.2f}",
            f"{min(result['seconds']):.2f}–{max(result['seconds']):.2f}",
            f"{result['other_cores']:.1f}",
        )
        for name, result in results.items()
    ]
    print()
    print(f"Machine: {describe_machine(machine)}; at end {machine['load_average_at_end'][0]}")
    print(f"Each row: {runs} fresh processes, one after another; seconds of wall time.")
    print()
    print(format_table(["command", "median s", "range s", "busy elsewhere"], rows))
    payload = {"machine": machine, "runs": runs, "results": results}
    print(f"wrote {write_results('bench_cli', payload)}")
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_cli.py",
        description="Wall time of every command's --help against the interpreter and Keras.",
    )
    parser.add_argument(
        "--runs", type=int, default=5, metavar="N", help="processes per row (default 5)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    run(runs=args.runs)
    return 0


if __name__ == "__main__":
    run_cli(main)
