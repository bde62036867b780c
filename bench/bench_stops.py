"""Stops at random moments of a prediction: does TensorFlow still work after each?

``python bench/bench_stops.py [--stops 150] [--window 0.12] [--seed 1]`` lands Ctrl-C
(SIGINT, from a timer) at a uniformly random moment in the first ``--window`` seconds of
``pcam.train.predict`` on a small model (64 patches of a synthetic set, or of ``--sample``),
``--stops`` times in one process, a new model each time, the delays drawn from ``--seed``. Two
arms, each in its own fresh process, the same delays:

- where it lands (the baseline, as before): the stop is raised at whatever bytecode it
  interrupts, TensorFlow's tracing and its context managers included;
- at safe points (today): ``pcam.interrupts.release_on_interrupt`` keeps it for the next
  batch end (``pcam.errors.stops_at_safe_points``).

Per arm: stops raised as interrupts, predictions that finished before their stop,
predictions that failed with another error (after a stop that left TensorFlow's graph stack
pushed, every later one fails), and whether the process died (a stop that corrupted native
memory: ``malloc_consolidate(): invalid chunk size``, SIGABRT) and after how many stops.
Output: a table on stdout and ``bench/results/bench_stops.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import (
    REPO,
    describe_machine,
    format_table,
    machine_info,
    synthetic_set,
    write_results,
)

from pcam.errors import run_cli

STOPS_SCRIPT = """
import contextlib, json, random, signal, sys
import keras
import pcam.interrupts
from pcam.data import load_training_data
from pcam.errors import stop_signals_as_interrupts
from pcam.model import ModelParams, build
from pcam.train import predict

sample, stops, window, seed, arm = sys.argv[1:6]
if arm == "where it lands":
    pcam.interrupts.stops_at_safe_points = contextlib.nullcontext
data = load_training_data(sample, limit=64, progress=False)
delays = random.Random(int(seed))
counts = {"stopped": 0, "finished": 0, "failed": 0, "first_failure": None}
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGALRM, lambda *_: signal.raise_signal(signal.SIGINT))
with stop_signals_as_interrupts():
    for number in range(int(stops)):
        keras.backend.clear_session()
        model = build(ModelParams(blocks=2, filters=(8, 16), dense_units=16, crop=32))
        signal.setitimer(signal.ITIMER_REAL, delays.uniform(0.001, float(window)))
        try:
            predict(model, data.val)
            outcome = "finished"
        except KeyboardInterrupt:
            outcome = "stopped"
        except Exception as error:
            outcome = "failed"
            if counts["first_failure"] is None:
                counts["first_failure"] = f"stop {number}: {str(error).splitlines()[0][:120]}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        counts[outcome] += 1
        print(json.dumps(counts), flush=True)  # the last line tells, should the process die
"""

ARMS = ("where it lands", "at safe points")


def measure(sample: Path, arm: str, args: argparse.Namespace) -> dict:
    settings = [str(sample), str(args.stops), str(args.window), str(args.seed), arm]
    done = subprocess.run(
        [sys.executable, "-c", STOPS_SCRIPT, *settings],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=3600,
    )
    lines = done.stdout.strip().splitlines()
    counts = json.loads(lines[-1]) if lines else {"stopped": 0, "finished": 0, "failed": 0}
    if done.returncode != 0:
        last_words = [line for line in done.stderr.splitlines() if "ensorFlow" not in line]
        counts |= {"died": done.returncode, "last_words": last_words[-3:]}
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, help="default: 200 synthetic patches")
    parser.add_argument("--stops", type=int, default=150)
    parser.add_argument("--window", type=float, default=0.12)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.sample is not None and not args.sample.exists():
        parser.error(f"{args.sample}: no such data set; pass --sample PATH")
    sample = args.sample or synthetic_set(200)
    info = machine_info()
    print(f"machine: {describe_machine(info)}, commit {info['commit']}; data {sample}")
    results: dict = {"machine": info, "settings": vars(args) | {"sample": str(sample)}}
    rows = []
    for arm in ARMS:  # the baseline first
        counts = results[arm] = measure(sample, arm, args)
        outcomes = [counts["stopped"], counts["finished"], counts["failed"]]
        died = f"exit {counts['died']}: {counts['last_words'][-1:]}" if "died" in counts else "no"
        rows.append([arm, *outcomes, died, counts.get("first_failure") or ""])
        print(f"{arm}: {counts}", flush=True)
    header = ["stop raised", "stopped", "finished first", "failed after", "died", "first failure"]
    print(format_table(header, rows))
    print(f"wrote {write_results('bench_stops', results)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
