"""Is the synthetic data set learnable but not trivial? Whole patches against the outer ring only.

``python bench/bench_synth.py [--patches N] [--epochs E] [--model small|seed]`` trains the
same model twice on one seeded split of a synthetic set: once on whole patches, once on
patches whose centre 32×32 (where the label lives) is replaced by grey. A learnable set gives
the first a high validation ROC AUC; a set that cannot be solved from the surroundings keeps
the second low. Results print as a table and go to ``bench/results/bench_synth.json``.

The default model is the seed design with a quarter of its filters and batch 16: on a 2-core
CPU the seed model itself (batch 64) gets about 100 steps in the time budget, too few to learn
anything (validation AUC ~0.56 after 4 epochs of 1,500 patches); ``--model seed`` runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

import numpy as np
from common import (
    CpuWindow,
    describe_machine,
    format_table,
    machine_info,
    synthetic_set,
    write_results,
)

from pcam.data import Subset, TrainingData, load_training_data
from pcam.errors import run_cli
from pcam.model import SEED_BASELINE, ModelParams, count_params
from pcam.synth import CENTRE

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GREY = 128
MODELS = {
    # Same layers as the seed design, a quarter of the convolution work, 4× the steps per
    # epoch: it learns the synthetic set within a few CPU minutes.
    "small": dataclasses.replace(
        SEED_BASELINE, filters=(16, 32, 64), dense_units=128, batch_size=16
    ),
    "seed": SEED_BASELINE,
}


def describe_params(params: ModelParams) -> str:
    """'filters 16/32/64, dense 128, batch 16' and the like."""
    filters = "/".join(str(f) for f in params.filters)
    return f"filters {filters}, dense {params.dense_units}, batch {params.batch_size}"


def ring_only(data: TrainingData) -> tuple[Subset, Subset]:
    """Training and validation subsets whose images have the centre 32×32 painted grey."""
    if data.val.images is not data.train.images:
        raise ValueError("ring_only expects training and validation rows of one split")
    images = np.array(data.train.images)  # an in-memory copy; the cache stays untouched
    images[:, CENTRE, CENTRE, :] = GREY
    return (
        dataclasses.replace(data.train, images=images),
        dataclasses.replace(data.val, images=images),
    )


def train_one(
    name: str, params: ModelParams, train_data: Subset, val_data: Subset
) -> dict[str, Any]:
    """Train and validate one model; its best validation AUC and how fast it went."""
    from pcam.train import release_memory, train

    print(f"training: {name}", file=sys.stderr)
    with CpuWindow() as window:
        result = train(params, train_data, val_data, seed=0)
    summary = {
        "model": name,
        "best_val_auc": result.best_val_auc,
        "best_epoch": result.best_epoch,
        "val_auc": result.val_auc,
        "loss": result.history.get("loss", []),
        "images_per_second": result.images_per_second,
        "seconds": window.wall,
        "other_cores": window.other_cores,
    }
    del result
    release_memory()
    return summary


def run(*, patches: int, epochs: int, model: str, batch_size: int | None = None) -> dict[str, Any]:
    """Train on whole patches and on the ring only; print and record both AUCs."""
    machine = machine_info()
    params = dataclasses.replace(MODELS[model], epochs=epochs)
    if batch_size is not None:
        params = dataclasses.replace(params, batch_size=batch_size)
    data = load_training_data(synthetic_set(patches), seed=0, val_fraction=0.2, progress=False)
    ring_train, ring_val = ring_only(data)
    results = [
        train_one("whole patch", params, data.train, data.val),
        train_one("outer ring only (centre grey)", params, ring_train, ring_val),
    ]
    whole, ring = results[0]["best_val_auc"], results[1]["best_val_auc"]
    rows = [
        (
            result["model"],
            f"{result['best_val_auc']:.3f} (epoch {result['best_epoch']})",
            " ".join(f"{auc:.3f}" for auc in result["val_auc"]),
            f"{result['images_per_second']:.0f}",
            f"{result['seconds']:.0f}",
            f"{result['other_cores']:.1f}",
        )
        for result in results
    ]
    machine["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    print()
    print(f"Machine: {describe_machine(machine)}; at end {machine['load_average_at_end'][0]}")
    print(
        f"Data: synthetic, seed 0: {len(data.train):,} training / {len(data.val):,} validation "
        f"patches (positives {data.train.y.mean():.0%} / {data.val.y.mean():.0%})."
    )
    print(
        f"Model: {model} ({describe_params(params)}), {count_params(params):,} weights, "
        f"crop 96, {epochs} epochs, no augmentation, training seed 0; both rows alike."
    )
    print()
    header = [
        "input",
        "best val ROC AUC",
        "val AUC per epoch",
        "train img/s",
        "seconds",
        "busy elsewhere",
    ]
    print(format_table(header, rows))
    print(f"\nwhole patch minus ring only: {whole - ring:+.3f} AUC")
    payload = {
        "machine": machine,
        "data": {
            "patches": patches,
            "train": len(data.train),
            "val": len(data.val),
            "train_positives": float(data.train.y.mean()),
            "val_positives": float(data.val.y.mean()),
            "fingerprint": data.fingerprint,
        },
        "model": model,
        "params": params.to_dict(),
        "results": results,
    }
    print(f"wrote {write_results('bench_synth', payload)}")
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_synth.py",
        description="Validation AUC on whole synthetic patches against their outer ring only.",
    )
    parser.add_argument(
        "--patches", type=int, default=1875, help="synthetic patches, 80%% train (default 1875)"
    )
    parser.add_argument("--epochs", type=int, default=4, help="epochs per model (default 4)")
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="small",
        help="small: filters 16/32/64, dense 128, batch 16 (default); seed: SEED_BASELINE",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the model's")
    args = parser.parse_args(argv)
    if args.patches < 20 or args.epochs < 1:
        parser.error("--patches must be at least 20 and --epochs at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be positive")
    run(patches=args.patches, epochs=args.epochs, model=args.model, batch_size=args.batch_size)
    return 0


if __name__ == "__main__":
    run_cli(main)
