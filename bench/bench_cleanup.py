"""Time between trials (issue 8): the harness's cleanup against Keras' own recipe.

``python bench/bench_cleanup.py [--trials 10] [--backends tensorflow jax torch]`` runs, per
backend, ``--trials`` one-epoch trials of the seed model (160 real training patches from
``--sample``, the shared data loaded once) through ``search.objective.Objective`` and Optuna,
twice, each in its own fresh process:

- harness: as a search runs, ``pcam.train.settle_before_trials`` when the objective is made
  (one collection, then everything alive is frozen out of later collections) and
  ``pcam.train.release_memory`` after every trial (``clear_session``, which ends in one full
  garbage collection);
- recipe (the baseline): nothing frozen, and after every trial the usual Keras recipe for
  models built in a loop, ``keras.backend.clear_session()`` followed by ``gc.collect()``.

It reports the seconds each cleanup took, per trial (the first and the last, and the
median), and the process's resident memory after each cleanup: after the second trial (the
first fills allocator pools and caches), the peak, and at the end. A backend that is not
installed is skipped with a note. Output: a table on stdout and
``bench/results/bench_cleanup.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import DEFAULT_SAMPLE, REPO, describe_machine, format_table, machine_info, write_results

from pcam.errors import run_cli

TRIALS_SCRIPT = """
import gc, json, os, sys, time
import keras, optuna
import search.objective as objective
from pcam.data import load_training_data
from search.space import seed_baseline_values

sample, trials, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3]
optuna.logging.set_verbosity(optuna.logging.ERROR)
data = load_training_data(sample, limit=200, progress=False)
if variant == "recipe":
    objective.settle_before_trials = lambda: None

    def cleanup():
        keras.backend.clear_session()
        gc.collect()
else:
    cleanup = objective.release_memory
seconds, rss_mib = [], []

def timed_cleanup():
    started = time.perf_counter()
    cleanup()
    seconds.append(time.perf_counter() - started)
    with open("/proc/self/statm") as statm:
        rss_mib.append(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)

objective.release_memory = timed_cleanup
study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
for _ in range(trials):
    study.enqueue_trial(seed_baseline_values())
study.optimize(objective.Objective(data, max_epochs=1, max_params=10**9, seed=0), n_trials=trials)
print(json.dumps({"seconds": seconds, "rss_mib": rss_mib}))
"""

BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def measure(sample: Path, backend: str, variant: str, trials: int) -> dict:
    """One fresh process: ``trials`` trials with the ``variant`` cleanup, timed."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", TRIALS_SCRIPT, str(sample), str(trials), variant],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{backend} {variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    args = parser.parse_args()
    if args.trials < 2:
        parser.error("--trials must be at least 2")
    if not args.sample.exists():
        parser.error(f"{args.sample}: no such data set; pass --sample PATH")

    info = machine_info()
    print(f"machine: {describe_machine(info)}, commit {info['commit']}")
    results: dict = {"machine": info, "trials": args.trials, "backends": {}}
    rows = []
    for backend in args.backends:
        if importlib.util.find_spec(BACKEND_PACKAGES.get(backend, backend)) is None:
            print(f"note: {backend} is not installed; skipped")
            continue
        measured = {}
        for variant in ("recipe", "harness"):  # the baseline first, then ours
            measured[variant] = measure(args.sample, backend, variant, args.trials)
            seconds = measured[variant]["seconds"]
            rss = measured[variant]["rss_mib"]
            rows.append(
                [
                    backend,
                    variant,
                    f"{seconds[0]:.3f}",
                    f"{statistics.median(seconds):.3f}",
                    f"{seconds[-1]:.3f}",
                    f"{rss[1]:.0f} / {max(rss):.0f} / {rss[-1]:.0f}",
                ]
            )
            print(
                f"{backend} {variant}: seconds {' '.join(f'{s:.3f}' for s in seconds)}; "
                f"RSS MiB {' '.join(f'{r:.0f}' for r in rss)}",
                flush=True,
            )
        results["backends"][backend] = measured
    print(
        format_table(
            [
                "backend",
                "cleanup",
                "first s",
                "median s",
                "last s",
                "RSS MiB: after trial 2 / peak / end",
            ],
            rows,
        )
    )
    print(f"wrote {write_results('bench_cleanup', results)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
