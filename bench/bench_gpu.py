"""Fast on a GPU (issue 8): raw ``model.fit`` against the harness, on a full-size data set.

One command on a machine with one GPU and no network, with whichever Keras backend is
installed (``KERAS_BACKEND=jax`` where TensorFlow is absent):

    KERAS_BACKEND=jax python bench/bench_gpu.py --train 220025 --out results/

Steps, each printed as it finishes and saved to ``bench_gpu.json`` (so a run cut short still
reports what it measured):

0. generate the synthetic set (``--train`` patches, Kaggle layout) and build the cache;
a. raw ``model.fit`` images/s of the seed model on in-memory uint8 arrays (the baseline);
b. the harness's training images/s over a short search of the same model (trials through
   Optuna + SQLite + the cached feed + exact validation AUC every epoch);
c. time to first step of a fresh model (build + compile + one step), as each trial pays;
d. trials per hour of a small search with pruning over the whole space.

Where no GPU is at hand the same script runs on the CPU with a small set (``--train 3000``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import optuna

from pcam.data import load_training_data
from pcam.errors import run_cli
from pcam.model import SEED_BASELINE, build
from pcam.runtime import resolve
from pcam.synth import generate
from search.config import SearchConfig
from search.objective import Objective
from search.runner import run_search
from search.space import seed_baseline_values
from search.study import FINISHED


def emit(results: dict, out: Path, message: str) -> None:
    print(message, flush=True)
    out.write_text(json.dumps(results, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description="GPU benchmark: raw fit against the harness")
    parser.add_argument("--train", type=int, default=3000, help="synthetic training patches")
    parser.add_argument("--data", type=Path, default=None, help="reuse a generated data set")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="at least 2")
    parser.add_argument("--search-seconds", type=float, default=120)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "bench_gpu.json"
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    os.environ.setdefault("PCAM_CACHE_DIR", str(work / "cache"))
    data_dir = args.data or work / "synthetic"
    started = time.perf_counter()
    if not (data_dir / "train_labels.csv").exists():
        generate(data_dir, n_train=args.train, n_test=0, seed=0, progress=False)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    data = load_training_data(data_dir, progress=False)
    cached = time.perf_counter() - started
    data_stats = {
        "train": len(data.train),
        "val": len(data.val),
        "generate_seconds": round(generated, 1),
        "cache_build_seconds": round(cached, 1),
    }

    # The GPU runtime starts only now: data generation and caching fork worker processes.
    runtime = resolve(precision=args.precision)
    results: dict = {
        "machine": f"{platform.node()}, {os.cpu_count()} CPU cores, {runtime.device}",
        "runtime": runtime.describe(),
        "versions": {"python": platform.python_version(), "keras": keras.__version__},
    }
    results["data"] = data_stats
    emit(
        results,
        out,
        f"machine: {results['machine']}\nruntime: {runtime.describe()}\n"
        f"0. data: {data.describe()}; generated in {generated:.0f} s, cached in {cached:.0f} s",
    )

    params = SEED_BASELINE.__class__(
        **{
            **SEED_BASELINE.to_dict(),
            "filters": (32, 64, 128),
            "batch_size": args.batch_size,
            "epochs": args.epochs,
        }
    )
    # a. raw model.fit on in-memory arrays
    x = np.asarray(data.train.images[data.train.indices])
    y = data.train.y.astype("float32")
    runtime.apply()
    model = build(params, jit_compile=runtime.jit_compile)
    epoch_times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.start)

    model.fit(
        x, y, batch_size=params.batch_size, epochs=args.epochs, verbose=0, callbacks=[Timer()]
    )
    steady = min(epoch_times[1:]) if len(epoch_times) > 1 else epoch_times[0]
    raw = len(x) / steady
    results["a_raw_fit_images_per_s"] = round(raw)
    del model, x
    keras.backend.clear_session()
    emit(
        results,
        out,
        f"a. raw model.fit: {raw:,.0f} images/s (batch {params.batch_size}, "
        f"steady epoch {steady:.2f} s)",
    )

    # b + c. the harness, three trials of the same model
    study = optuna.create_study(
        storage=f"sqlite:///{work}/gpu.db", direction="maximize", pruner=optuna.pruners.NopPruner()
    )
    values = seed_baseline_values() | {"batch_size": args.batch_size}
    trials = 3
    for _ in range(trials):
        study.enqueue_trial(values)
    objective = Objective(data, max_epochs=args.epochs, max_params=10**9, seed=0, runtime=runtime)
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    wall = time.perf_counter() - started
    done = study.trials
    train_ips = [t.user_attrs["images_per_second"] for t in done]
    steady_epochs = [
        (t.user_attrs["train_seconds"] - t.user_attrs["first_epoch_seconds"]) / (args.epochs - 1)
        for t in done
    ]
    harness_steady = len(data.train) / min(steady_epochs)
    results["b_harness"] = {
        "steady_epoch_images_per_s": round(harness_steady),
        "training_images_per_s_incl_compile": [round(v) for v in train_ips],
        "end_to_end_images_per_s": round(trials * args.epochs * len(data.train) / wall),
        "ratio_steady_to_raw": round(harness_steady / raw, 3),
        "validation_seconds_per_epoch": round(
            np.mean(
                [
                    (
                        t.user_attrs["seconds_per_epoch"] * args.epochs
                        - t.user_attrs["train_seconds"]
                    )
                    / args.epochs
                    for t in done
                ]
            ),
            2,
        ),
    }
    first_step = []
    for _ in range(3):  # c. build + compile + one step of a fresh model, as each trial pays
        keras.backend.clear_session()
        started = time.perf_counter()
        model = build(params, jit_compile=runtime.jit_compile)
        batch = slice(0, params.batch_size)
        model.train_on_batch(data.train.images[batch], data.train.labels[batch].astype("float32"))
        first_step.append(time.perf_counter() - started)
    del model
    keras.backend.clear_session()
    results["c_time_to_first_step_s"] = [round(v, 1) for v in first_step]
    emit(
        results,
        out,
        f"b. harness: {harness_steady:,.0f} images/s in a steady epoch = "
        f"{harness_steady / raw:.0%} of raw fit; end to end (compile + validation included) "
        f"{results['b_harness']['end_to_end_images_per_s']:,} images/s\n"
        f"c. time to first step per trial: {results['c_time_to_first_step_s']} s",
    )

    # d. a small search with pruning over the whole space
    config = SearchConfig(
        study="gpu-search",
        storage=f"sqlite:///{work}/search.db",
        data=str(data_dir),
        trials=10_000,
        timeout=args.search_seconds,
        max_epochs=args.epochs,
        progress=False,
        report=False,
        precision=args.precision,
    )
    started = time.perf_counter()
    searched = run_search(config).study
    wall = time.perf_counter() - started
    finished = searched.get_trials(deepcopy=False, states=FINISHED)
    results["d_search"] = {
        "seconds": round(wall),
        "finished_trials": len(finished),
        "trials_per_hour": round(len(finished) / wall * 3600),
        "best_val_auc": searched.best_value if finished else None,
    }
    emit(
        results,
        out,
        f"d. search with Hyperband pruning: {len(finished)} trials in "
        f"{wall:.0f} s = {results['d_search']['trials_per_hour']} trials/hour",
    )


if __name__ == "__main__":
    run_cli(main)
