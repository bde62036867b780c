"""Search benchmarks (issue 3), each measured against its baseline in the same run.

1. Harness overhead: one trial through Optuna + SQLite + the feed + exact validation AUC,
   against a plain ``model.fit`` of the same model on the same in-memory arrays (with Keras'
   own per-epoch validation, and without any). Build and compile are timed on both sides;
   an untimed warm-up of each comes first, then ``--rounds`` interleaved rounds, and the
   overhead is the median of the per-round ratios (with the smallest and largest).
2. Search on the real sample under a fixed wall-clock budget per arm: TPE with Hyperband
   pruning against TPE without pruning — best validation AUC, the seed baseline trial, and
   the epochs each arm spent.

    python bench/bench_search.py [--sample PATH] [--limit 1200] [--budget 600] [--max-epochs 4]
        [--overhead-epochs 3] [--rounds 5] [--skip-overhead | --skip-search]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import optuna
from common import (
    DEFAULT_SAMPLE,
    CpuWindow,
    describe_machine,
    format_table,
    machine_info,
    write_results,
)

from pcam.data import load_training_data
from pcam.errors import run_cli
from pcam.model import SEED_BASELINE, build
from pcam.runtime import CPU_DEFAULT
from pcam.train import release_memory
from search.config import SearchConfig
from search.objective import Objective
from search.runner import run_search
from search.space import seed_baseline_values
from search.study import FINISHED


def overhead(data, *, epochs: int, rounds: int) -> dict:
    """Wall time of one harness trial against plain ``model.fit`` of the same model and arrays.

    Every timing includes building and compiling the model, as a trial does. One untimed
    warm-up of each kind comes first (the process's first fit pays one-off start-up costs),
    then ``rounds`` rounds, each running the three kinds in a rotated order so that slow
    stretches of a shared machine fall on all of them alike. The overhead is the median of
    the per-round ratios.
    """
    params = SEED_BASELINE
    x_train = np.asarray(data.train.images[data.train.indices])
    y_train = data.train.y.astype("float32")
    x_val = np.asarray(data.val.images[data.val.indices])
    y_val = data.val.y.astype("float32")

    def plain(validate: bool) -> float:
        keras.utils.set_random_seed(0)
        started = time.perf_counter()
        model = build(params, jit_compile=CPU_DEFAULT.jit_compile)
        model.fit(
            x_train,
            y_train,
            batch_size=params.batch_size,
            epochs=epochs,
            validation_data=(x_val, y_val) if validate else None,
            verbose=0,
        )
        seconds = time.perf_counter() - started
        del model
        release_memory()
        return seconds

    parts: list[dict] = []

    def harness() -> float:
        with tempfile.TemporaryDirectory() as folder:
            study = optuna.create_study(
                storage=f"sqlite:///{folder}/overhead.db",
                direction="maximize",
                pruner=optuna.pruners.NopPruner(),
            )
            study.enqueue_trial(seed_baseline_values())
            objective = Objective(data, max_epochs=epochs, max_params=10**9, seed=0)
            started = time.perf_counter()
            study.optimize(objective, n_trials=1)
            seconds = time.perf_counter() - started
            attrs = study.trials[0].user_attrs
            parts.append(
                {
                    "build": attrs["build_seconds"],
                    "fit_without_validation": attrs["train_seconds"],
                    "validation": attrs["seconds_per_epoch"] * epochs - attrs["train_seconds"],
                    "rest": seconds - attrs["build_seconds"] - attrs["seconds_per_epoch"] * epochs,
                }
            )
            return seconds

    kinds = {
        "plain_fit": lambda: plain(validate=False),
        "plain_fit_with_validation": lambda: plain(validate=True),
        "harness_trial": harness,
    }
    for run in kinds.values():  # warm-up, not timed
        run()
    parts.clear()
    names = list(kinds)
    times: dict[str, list[float]] = {name: [] for name in names}
    window = CpuWindow()
    for round_ in range(rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        with window:
            for name in order:
                times[name].append(kinds[name]())
        print(
            f"   round {round_ + 1}/{rounds}: "
            + ", ".join(f"{name} {times[name][-1]:.1f} s" for name in names),
            flush=True,
        )
    ratios = {
        "vs_fit_with_validation": [
            h / p
            for h, p in zip(times["harness_trial"], times["plain_fit_with_validation"], strict=True)
        ],
        "vs_fit": [h / p for h, p in zip(times["harness_trial"], times["plain_fit"], strict=True)],
    }
    return {
        "epochs": epochs,
        "rounds": rounds,
        "seconds": times,
        "median_seconds": {name: statistics.median(values) for name, values in times.items()},
        "overhead": {
            name: {
                "median": statistics.median(values) - 1,
                "min": min(values) - 1,
                "max": max(values) - 1,
            }
            for name, values in ratios.items()
        },
        "harness_parts_median_seconds": {
            key: statistics.median(part[key] for part in parts) for key in parts[0]
        },
        "other_cores_busy": round(window.other_cores, 2),
    }


def search_arm(sample: Path, *, pruner: str, budget: float, limit: int, max_epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        config = SearchConfig(
            study=f"bench-{pruner}",
            storage=f"sqlite:///{folder}/bench.db",
            data=str(sample),
            trials=10_000,
            timeout=budget,
            pruner=pruner,
            max_epochs=max_epochs,
            limit=limit,
            progress=False,
            report=False,  # the study lives in a temporary folder; so would its report
        )
        started = time.perf_counter()
        study = run_search(config).study
        wall = time.perf_counter() - started
        finished = study.get_trials(deepcopy=False, states=FINISHED)
        baseline = next(t for t in finished if t.user_attrs.get("role") == "seed_baseline")
        complete = [t for t in finished if t.state.name == "COMPLETE"]
        return {
            "pruner": pruner,
            "wall_seconds": round(wall, 1),
            "trials_complete": len(complete),
            "trials_pruned": len(finished) - len(complete),
            "epochs_spent": sum(len(t.intermediate_values) for t in study.trials),
            "seed_baseline_auc": baseline.value,
            "best_auc": study.best_value,
            "best_trial": study.best_trial.number,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument("--limit", type=int, default=1200, help="labelled patches used")
    parser.add_argument("--budget", type=float, default=600, help="seconds per search arm")
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--overhead-epochs", type=int, default=3, help="epochs per timed fit")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of the overhead")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    info = machine_info()
    print(f"machine: {describe_machine(info)}, commit {info['commit']}")
    data = load_training_data(args.sample, limit=args.limit, progress=False)
    print(f"data: {data.describe()}")
    results: dict = {"machine": info, "data": data.describe(), "args": vars(args)}

    if not args.skip_overhead:
        print(
            f"\n1. one seed-baseline trial against plain model.fit, {args.overhead_epochs} "
            f"epochs, build included, {args.rounds} interleaved rounds after a warm-up:"
        )
        cost = overhead(data, epochs=args.overhead_epochs, rounds=args.rounds)
        results["overhead"] = cost
        median = cost["median_seconds"]
        spread = cost["overhead"]
        print(
            format_table(
                ["run", "median s", "harness overhead (median, min..max of rounds)"],
                [
                    [
                        "plain model.fit, no validation",
                        f"{median['plain_fit']:.1f}",
                        _span(spread["vs_fit"]),
                    ],
                    [
                        "plain model.fit + Keras validation",
                        f"{median['plain_fit_with_validation']:.1f}",
                        _span(spread["vs_fit_with_validation"]),
                    ],
                    [
                        "harness trial (Optuna, SQLite, feed, exact val AUC)",
                        f"{median['harness_trial']:.1f}",
                        "-",
                    ],
                ],
            )
        )
        parts = cost["harness_parts_median_seconds"]
        print(
            "   harness trial, median parts: "
            + ", ".join(f"{name.replace('_', ' ')} {value:.2f} s" for name, value in parts.items())
        )
        print(f"   other processes kept {cost['other_cores_busy']} cores busy meanwhile")

    if not args.skip_search:
        arms = [
            search_arm(
                args.sample,
                pruner=pruner,
                budget=args.budget,
                limit=args.limit,
                max_epochs=args.max_epochs,
            )
            for pruner in ("hyperband", "none")
        ]
        results["search"] = arms
        print(
            f"\n2. TPE search on the real sample, {args.budget:.0f} s per arm, "
            f"max {args.max_epochs} epochs:"
        )
        print(
            format_table(
                ["pruner", "complete", "pruned", "epochs", "seed-baseline AUC", "best AUC"],
                [
                    [
                        arm["pruner"],
                        str(arm["trials_complete"]),
                        str(arm["trials_pruned"]),
                        str(arm["epochs_spent"]),
                        f"{arm['seed_baseline_auc']:.4f}",
                        f"{arm['best_auc']:.4f} (trial {arm['best_trial']})",
                    ]
                    for arm in arms
                ],
            )
        )
    print(f"\nwrote {write_results('bench_search', results)}")


def _span(values: dict) -> str:
    return f"{values['median']:+.1%} ({values['min']:+.1%}..{values['max']:+.1%})"


if __name__ == "__main__":
    run_cli(main)
