"""Search benchmarks (issue 3), each measured against its baseline in the same run.

1. Harness overhead: one trial through Optuna + SQLite + the feed + exact validation AUC,
   against a plain ``model.fit`` of the same model on the same in-memory arrays (with Keras'
   own per-epoch validation, and without any).
2. Search on the real sample under a fixed wall-clock budget per arm: TPE with Hyperband
   pruning against TPE without pruning — best validation AUC, the seed baseline trial, and
   the epochs each arm spent.

    python bench/bench_search.py [--sample PATH] [--limit 1200] [--budget 600] [--max-epochs 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import optuna

from pcam.data import load_training_data
from pcam.model import SEED_BASELINE, build
from search.config import SearchConfig
from search.objective import Objective
from search.runner import run_search
from search.space import seed_baseline_values
from search.study import FINISHED

REPO = Path(__file__).resolve().parent.parent


def machine() -> str:
    model = "unknown CPU"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Keras {keras.__version__} on {keras.backend.backend()}"
    )


def overhead(data, *, epochs: int) -> dict:
    """Wall time of one harness trial against plain model.fit on the same arrays."""
    params = SEED_BASELINE
    x_train = np.asarray(data.train.images[data.train.indices])
    y_train = data.train.y.astype("float32")
    x_val = np.asarray(data.val.images[data.val.indices])
    y_val = data.val.y.astype("float32")

    def plain(validate: bool) -> float:
        keras.utils.set_random_seed(0)
        model = build(params)
        started = time.perf_counter()
        model.fit(
            x_train,
            y_train,
            batch_size=params.batch_size,
            epochs=epochs,
            validation_data=(x_val, y_val) if validate else None,
            verbose=0,
        )
        seconds = time.perf_counter() - started
        keras.backend.clear_session()
        return seconds

    def harness() -> float:
        with tempfile.TemporaryDirectory() as folder:
            study = optuna.create_study(
                storage=f"sqlite:///{folder}/overhead.db",
                direction="maximize",
                pruner=optuna.pruners.NopPruner(),
            )
            study.enqueue_trial(seed_baseline_values(max_epochs=epochs))
            objective = Objective(data, max_epochs=epochs, max_params=10**9, seed=0)
            started = time.perf_counter()
            study.optimize(objective, n_trials=1)
            return time.perf_counter() - started

    # Alternate the runs so that a noisy neighbour hurts both sides alike.
    runs = {"plain_fit": [], "plain_fit_with_validation": [], "harness_trial": []}
    for _ in range(2):
        runs["plain_fit"].append(plain(validate=False))
        runs["plain_fit_with_validation"].append(plain(validate=True))
        runs["harness_trial"].append(harness())
    best = {name: min(times) for name, times in runs.items()}
    best["overhead_vs_fit_with_validation"] = (
        best["harness_trial"] / best["plain_fit_with_validation"] - 1
    )
    best["overhead_vs_fit"] = best["harness_trial"] / best["plain_fit"] - 1
    return best


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
    parser.add_argument(
        "--sample", type=Path, default=REPO.parent / "shared" / "pcam-kaggle-sample"
    )
    parser.add_argument("--limit", type=int, default=1200, help="labelled patches used")
    parser.add_argument("--budget", type=float, default=600, help="seconds per search arm")
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    data = load_training_data(args.sample, limit=args.limit, progress=False)
    print(f"data: {data.describe()}")
    results: dict = {"machine": machine(), "data": data.describe()}

    cost = overhead(data, epochs=2)
    results["overhead"] = cost
    print("\n1. one seed-baseline trial, 2 epochs (best of 2 runs each):")
    print(f"   plain model.fit, no validation         {cost['plain_fit']:7.1f} s")
    print(f"   plain model.fit + Keras validation     {cost['plain_fit_with_validation']:7.1f} s")
    print(f"   harness trial (Optuna, SQLite, feed,   {cost['harness_trial']:7.1f} s")
    print("   exact val AUC, user attrs)")
    print(
        f"   overhead: {cost['overhead_vs_fit_with_validation']:+.1%} against fit with "
        f"validation, {cost['overhead_vs_fit']:+.1%} against fit without"
    )

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
        print("   pruner     trials(complete/pruned)  epochs  seed-baseline AUC  best AUC")
        for arm in arms:
            print(
                f"   {arm['pruner']:<10} {arm['trials_complete']:>6} / {arm['trials_pruned']:<13}"
                f" {arm['epochs_spent']:>6}  {arm['seed_baseline_auc']:17.4f}  "
                f"{arm['best_auc']:.4f} (trial {arm['best_trial']})"
            )
    out = REPO / "bench" / "results" / "bench_search.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
