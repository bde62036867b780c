"""What test-time augmentation and ensembling add to validation ROC AUC, side by side.

``python bench/bench_submit.py [--sample PATH] [--limit 1200] [--models 3] [--epochs 5]
[--members varied|seeds] [--bootstrap 1000] [--json PATH]`` splits the labelled patches of the
real sample with ``pcam.data.load_training_data(seed=0)`` (1,200 → 960 training / 240 held-out
validation patches), trains K small models on the training rows only, each for a fixed number of
epochs (the validation rows are scored after every epoch for the record, never used to pick
weights), and scores the held-out rows six ways, the way ``search.submit`` predicts:

- one model, no TTA; one model, 4 flips; one model, the 8 symmetries (``pcam.tta``): mean ±
  standard deviation (and range) over the K models;
- the ensemble of the K models (mean probability, as ``search.exported.combine`` averages)
  without TTA, with flips and with the 8 symmetries.

Each gain over "one model, no TTA" comes with a paired bootstrap interval over the validation
rows: 240 patches give an AUC a standard error of about 0.02, so small gains are noise. The
ensemble with d8 is also predicted through ``combine`` + ``predict_tta`` — the exported
model's exact path — and must match the per-member arithmetic. ``--members varied`` (default)
alternates centre crops 64 and 48 with one seed per model; ``--members seeds`` keeps crop 64
and varies only the seed. The ensemble is also set against its best member, which a weak member
can beat. Results print as tables and go to ``bench/results/bench_submit.json`` (``--json``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    DEFAULT_SAMPLE,
    CpuWindow,
    describe_machine,
    format_table,
    machine_info,
    write_results,
)

from pcam.data import Subset, load_training_data
from pcam.errors import DataError, run_cli
from pcam.metrics import roc_auc
from pcam.model import SEED_BASELINE, ModelParams, count_params

# The seed design shrunk to train in well under a minute on 2 CPU cores: a quarter of its
# filters, a smaller dense layer, batch 16 (more steps per epoch) and random symmetries in
# training, as a search's d8=True trial would have.
SMALL = dataclasses.replace(
    SEED_BASELINE,
    filters=(16, 32, 64),
    dense_units=128,
    batch_size=16,
    crop=64,
    d8=True,
)
VARIED_CROPS = (64, 48)
MODES = ("none", "flips", "d8")


def member_params(count: int, *, members: str, epochs: int) -> list[ModelParams]:
    """The K members' params: alternating crops 64/48 (``varied``) or all alike (``seeds``)."""
    crops = VARIED_CROPS if members == "varied" else (SMALL.crop,)
    return [
        dataclasses.replace(SMALL, crop=crops[i % len(crops)], epochs=epochs) for i in range(count)
    ]


def describe_params(params: ModelParams) -> str:
    filters = "/".join(str(f) for f in params.filters)
    return (
        f"crop {params.crop}, filters {filters}, dense {params.dense_units}, "
        f"batch {params.batch_size}, d8 {'on' if params.d8 else 'off'}"
    )


def views_by_mode(views: np.ndarray) -> dict[str, np.ndarray]:
    """Probabilities per TTA mode from the 8 views of ``predict_each`` (d8 order 0–7)."""
    from pcam.tta import TTA_MODES

    return {mode: views[list(TTA_MODES[mode])].mean(axis=0) for mode in MODES}


def train_member(
    index: int, params: ModelParams, train_data: Subset, val_data: Subset, *, seed: int
) -> tuple[Any, dict[str, Any], np.ndarray]:
    """Train one member blind to selection; its model, record and 8 views of the val rows."""
    from pcam.train import train
    from pcam.tta import TTA_MODES, predict_each

    print(f"training model {index + 1}: {describe_params(params)}, seed {seed}", file=sys.stderr)
    with CpuWindow() as window:
        result = train(params, train_data, val_data, seed=seed)
    started = time.perf_counter()
    views = predict_each(result.model, val_data, transforms=TTA_MODES["d8"])
    predict_seconds = time.perf_counter() - started
    probabilities = views_by_mode(views)
    record = {
        "model": index + 1,
        "seed": seed,
        "params": params.to_dict(),
        "weights": count_params(params),
        "epochs": result.epochs_run,
        "val_auc_per_epoch": result.val_auc,  # for the record; the last epoch's weights are used
        "loss": result.history.get("loss", []),
        "train_seconds": result.train_seconds,
        "images_per_second": result.images_per_second,
        "wall_seconds": window.wall,
        "other_cores": window.other_cores,
        "predict_d8_seconds": predict_seconds,
        "auc": {mode: roc_auc(val_data.y, p) for mode, p in probabilities.items()},
    }
    return result.model, record, views


def scores(labels: np.ndarray, views: np.ndarray) -> dict[str, Any]:
    """Every row of the comparison from the members' views (models × 8 × rows)."""
    per_member = [views_by_mode(member) for member in views]
    ensemble = views_by_mode(views.mean(axis=0))  # mean over members, then over views
    single = {
        mode: np.array([roc_auc(labels, member[mode]) for member in per_member]) for mode in MODES
    }
    return {
        "single": single,
        "ensemble": {mode: roc_auc(labels, p) for mode, p in ensemble.items()},
    }


def bootstrap_gains(
    labels: np.ndarray, views: np.ndarray, *, resamples: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Paired bootstrap over validation rows of each row's gain over one model without TTA."""
    rng = np.random.default_rng(seed)
    gains: dict[str, list[float]] = {}
    rows = len(labels)
    done = 0
    while done < resamples:
        pick = rng.integers(0, rows, rows)
        y = labels[pick]
        if y.min() == y.max():
            continue  # one class only: AUC undefined
        found = scores(y, views[:, :, pick])
        base = found["single"]["none"]
        for mode in MODES:
            gains.setdefault(f"single {mode}", []).append(
                float(np.mean(found["single"][mode] - base))
            )
            gains.setdefault(f"ensemble {mode}", []).append(
                float(found["ensemble"][mode] - base.mean())
            )
        done += 1
    return {name: np.asarray(values) for name, values in gains.items()}


def exported_path_check(models: list[Any], val_data: Subset, expected: np.ndarray) -> float:
    """Largest gap between the exported path (combine + predict_tta d8) and the arithmetic."""
    from pcam.tta import predict_tta
    from search.exported import combine

    model = combine(models, [{"trial": number} for number in range(len(models))])
    probabilities = predict_tta(model, val_data, mode="d8")
    return float(np.max(np.abs(probabilities - expected)))


def spread(values: np.ndarray) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f} ({values.min():.4f}–{values.max():.4f})"


def run(
    *,
    sample: Path,
    limit: int,
    models: int,
    epochs: int,
    members: str,
    resamples: int,
    json_path: Path | None = None,
) -> dict[str, Any]:
    from pcam.train import release_memory

    started = time.perf_counter()
    machine = machine_info()
    data = load_training_data(sample, limit=limit, seed=0, progress=False)
    if data.train.images is not data.val.images:
        print("note: this layout's validation rows come from its own split", file=sys.stderr)
    labels = data.val.y.astype(int)
    plan = member_params(models, members=members, epochs=epochs)
    trained, records, all_views = [], [], []
    for index, params in enumerate(plan):
        model, record, views = train_member(index, params, data.train, data.val, seed=index)
        trained.append(model)
        records.append(record)
        all_views.append(views)
    views = np.stack(all_views)  # models × 8 views × validation rows
    found = scores(labels, views)
    ensemble_d8 = views_by_mode(views.mean(axis=0))["d8"]
    gap = exported_path_check(trained, data.val, ensemble_d8)
    del trained
    release_memory()
    gains = bootstrap_gains(labels, views, resamples=resamples) if resamples else {}

    base = found["single"]["none"].mean()
    view_count = {"none": 1, "flips": 4, "d8": 8}
    rows, table = [], []
    for kind in ("single", "ensemble"):
        for mode in MODES:
            name = f"{kind} {mode}"
            auc = found[kind][mode]
            values = np.atleast_1d(auc)
            gain = float(values.mean() - base)
            interval = (
                np.percentile(gains[name], [2.5, 97.5]).tolist()
                if gains and name != "single none"
                else None
            )
            views_per_patch = view_count[mode] * (models if kind == "ensemble" else 1)
            label = (
                f"one model, {'no TTA' if mode == 'none' else mode}"
                if kind == "single"
                else f"ensemble of {models}, {'no TTA' if mode == 'none' else mode}"
            )
            rows.append(
                {
                    "prediction": label,
                    "kind": kind,
                    "tta": mode,
                    "views_per_patch": views_per_patch,
                    "auc": values.tolist() if kind == "single" else float(auc),
                    "auc_mean": float(values.mean()),
                    "auc_sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                    "gain": gain,
                    "gain_95_interval": interval,
                }
            )
            table.append(
                (
                    label,
                    str(views_per_patch),
                    spread(values) if kind == "single" else f"{float(auc):.4f}",
                    "—" if name == "single none" else f"{gain:+.4f}",
                    f"{interval[0]:+.4f} to {interval[1]:+.4f}" if interval else "—",
                )
            )

    machine["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    total = time.perf_counter() - started
    print()
    print(f"Machine: {describe_machine(machine)}; at end {machine['load_average_at_end'][0]}")
    print(
        f"Data: {data.describe()}; split seed 0, limit {limit}. Models train on the training "
        "rows only, for a fixed number of epochs; the validation rows are held out."
    )
    print()
    member_table = [
        (
            str(r["model"]),
            describe_params(ModelParams.from_dict(r["params"])),
            str(r["seed"]),
            str(r["epochs"]),
            f"{r['wall_seconds']:.0f}",
            f"{r['images_per_second']:.0f}",
            f"{r['other_cores']:.1f}",
            " ".join(f"{a:.3f}" for a in r["val_auc_per_epoch"]),
            f"{r['auc']['none']:.4f}",
            f"{r['auc']['flips']:.4f}",
            f"{r['auc']['d8']:.4f}",
        )
        for r in records
    ]
    print(
        format_table(
            [
                "model",
                "params",
                "seed",
                "epochs",
                "seconds",
                "img/s",
                "busy elsewhere",
                "val AUC per epoch",
                "no TTA",
                "flips",
                "d8",
            ],
            member_table,
        )
    )
    print()
    print(
        format_table(
            [
                f"prediction on {len(data.val)} held-out patches",
                "views/patch",
                "val ROC AUC (single: mean ± sd (range) over models)",
                "gain over one model, no TTA",
                f"95% paired bootstrap ({resamples})",
            ],
            table,
        )
    )
    best = int(np.argmax(found["single"]["none"]))
    best_auc = float(found["single"]["none"][best])
    print(
        f"\nbest single model (model {best + 1}, no TTA) {best_auc:.4f}: ensemble no TTA "
        f"{found['ensemble']['none'] - best_auc:+.4f}, ensemble d8 "
        f"{found['ensemble']['d8'] - best_auc:+.4f} against it (a weak member drags the mean)"
    )
    print(
        f"exported path (combine + predict_tta d8) against the arithmetic: max gap {gap:.1e}; "
        f"total {total:.0f} s"
    )
    payload = {
        "machine": machine,
        "data": {
            "source": str(sample),
            "limit": limit,
            "split_seed": 0,
            "train": len(data.train),
            "val": len(data.val),
            "train_positives": float(data.train.y.mean()),
            "val_positives": float(data.val.y.mean()),
            "fingerprint": data.fingerprint,
        },
        "members_mode": members,
        "members": records,
        "results": rows,
        "bootstrap_resamples": resamples,
        "best_single": {"model": best + 1, "auc_none": best_auc},
        "exported_path_max_gap": gap,
        "total_seconds": total,
    }
    print(f"wrote {write_results('bench_submit', payload, json_path)}")
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/bench_submit.py",
        description="Validation ROC AUC of one model and an ensemble, with and without TTA.",
    )
    add = parser.add_argument
    add("--sample", type=Path, default=DEFAULT_SAMPLE, help="labelled PCam data set")
    add("--limit", type=int, default=1200, help="labelled patches used, 20%% held out")
    add("--models", type=int, default=3, help="ensemble members K (default 3)")
    add("--epochs", type=int, default=5, help="epochs per model (default 5)")
    add(
        "--members",
        choices=("varied", "seeds"),
        default="varied",
        help="varied: crops 64/48 alternate, one seed each (default); seeds: crop 64, seeds only",
    )
    add("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (0: none)")
    add("--json", type=Path, default=None, help="default: bench/results/bench_submit.json")
    args = parser.parse_args(argv)
    if args.models < 1 or args.epochs < 1 or args.limit < 20 or args.bootstrap < 0:
        parser.error("--models and --epochs must be positive, --limit at least 20")
    if not args.sample.exists():
        raise DataError(f"{args.sample}: no such data set; pass --sample PATH")
    run(
        sample=args.sample,
        limit=args.limit,
        models=args.models,
        epochs=args.epochs,
        members=args.members,
        resamples=args.bootstrap,
        json_path=args.json,
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
